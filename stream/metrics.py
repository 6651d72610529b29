"""The worker's counters as Prometheus metrics (stockpred_stream_*), read from `Worker.counters()` at each scrape."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

HELP = {
    "entries": "stream entries read and acknowledged",
    "batches": "batches handled",
    "applied": "bars applied to the intraday store",
    "duplicates": "bars not applied: the same bar was already applied (ts <= last applied ts)",
    "out_of_order": "bars not applied: older than the last applied bar, or a different bar for a passed ts",
    "dead_lettered": "malformed entries moved to the dead-letter stream",
    "trimmed": "pending entries trimmed from the stream (MAXLEN) before they were handled",
    "group_recreated": "consumer groups recreated after Redis lost them (a possible gap)",
    # --predict
    "refreshed": "intraday feature vectors written to the online store",
    "predicted": "intraday predictions written to the cache and pushed",
    "alerts": "alerts fired by the subscribers' rules",
    "late_bars": "bars of an earlier session: stored, not scored",
    "warming_up": "refreshes skipped: the ticker's history is too short for the required features",
}
GAUGES = {
    "lag_seconds": "now - end of the newest bar handled",
    "refresh_seconds": "how long the last batch's features, predictions and writes took",
}


class WorkerCollector(Collector):
    """One worker process's counters, labelled with its consumer name."""

    def __init__(self, counters: Callable[[], Mapping[str, float]], consumer: str) -> None:
        self.counters, self.consumer = counters, consumer

    def collect(self) -> Iterator[Metric]:
        values = self.counters()
        for name, text in HELP.items():
            family = CounterMetricFamily(f"stockpred_stream_{name}", text, labels=["consumer"])
            family.add_metric([self.consumer], float(values.get(name, 0)))
            yield family
        for name, text in GAUGES.items():
            gauge = GaugeMetricFamily(f"stockpred_stream_{name}", text, labels=["consumer"])
            value = values.get(name, math.nan)
            if not math.isnan(value):
                gauge.add_metric([self.consumer], value)
            yield gauge


def worker_registry(counters: Callable[[], Mapping[str, float]], consumer: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(counters, consumer))
    return registry
