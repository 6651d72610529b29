"""The service's own Prometheus metrics, beside BentoML's (`bentoml_service_*`) on /metrics.

prometheus_client is imported when the worker builds `Metrics`, not when this module is imported: BentoML sets
PROMETHEUS_MULTIPROC_DIR in each worker after importing the service, and a client imported earlier would count in
single-process mode, invisible to /metrics.
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        import prometheus_client as prom

        self.cache = prom.Counter(
            "stockpred_cache_requests",
            "Prediction cache lookups per ticker: hit, miss, or uncached (no cache reachable)",
            ["result"],
        )
        self.latency = prom.Histogram(
            "stockpred_prediction_latency_seconds",
            "Time to answer a prediction request, auth and rate limit included",
            ["route"],
            buckets=LATENCY_BUCKETS,
        )
        self.model_info = prom.Gauge(
            "stockpred_model_info",
            "1 for the model version each role (champion, challenger) is served with, and the device it scores on",
            ["role", "model_name", "model_version", "family", "device"],
            multiprocess_mode="livemax",
        )
        self.feature_reads = prom.Counter(
            "stockpred_feature_reads", "Feature vectors read, per source (redis, lake)", ["source"]
        )
        self.model_rows = prom.Histogram(
            "stockpred_model_batch_rows",
            "Rows per model call (concurrent requests are batched together)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384),
        )
        self.auth_failures = prom.Counter("stockpred_auth_failures", "Requests refused with 401 or 403", ["reason"])
        # per route, never per key: /metrics is public, and key ids are for the audit log
        self.rate_limited = prom.Counter("stockpred_rate_limited", "Requests refused with 429", ["route"])
        self.redis_up = prom.Gauge(
            "stockpred_redis_up", "1 while Redis answers (0: lake, uncached)", multiprocess_mode="livemin"
        )
        self.stale = prom.Counter("stockpred_stale_predictions", "Answers flagged stale")
        self.shadow = prom.Counter("stockpred_shadow_predictions", "Rows the challenger scored in shadow", ["outcome"])
        self.shadow_diff = prom.Histogram(
            "stockpred_shadow_abs_diff",
            "|challenger - champion| per shadow-scored row",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        # the canary (bento.canary): per variant (champion, canary), never per client
        self.variant_requests = prom.Counter(
            "stockpred_variant_requests",
            "Prediction requests per variant and outcome (ok, failed)",
            ["variant", "outcome"],
        )
        self.variant_latency = prom.Histogram(
            "stockpred_variant_latency_seconds",
            "Time to predict per variant (a failed canary request: until its champion fallback answered)",
            ["variant"],
            buckets=LATENCY_BUCKETS,
        )
        self.canary_share = prom.Gauge(
            "stockpred_canary_percent", "The share of clients routed to the challenger", multiprocess_mode="livemax"
        )
        self.canary_rollbacks = prom.Counter("stockpred_canary_rollbacks", "Automatic canary rollbacks")
        self.reloads = prom.Counter("stockpred_model_reloads", "Model swaps after the registry alias moved")
        # push (bento.push): streams open now, events sent, clients dropped, the relay's Redis feed
        self.push_clients = prom.Gauge(
            "stockpred_push_clients", "Push clients connected (/events, /ws/events)", multiprocess_mode="livesum"
        )
        self.push_events = prom.Counter("stockpred_push_events", "Events pushed to clients", ["transport"])
        self.push_dropped = prom.Counter(
            "stockpred_push_dropped_clients", "Push clients disconnected for being too slow", ["reason"]
        )
        self.push_feed_up = prom.Gauge(
            "stockpred_push_feed_up", "1 while the push relay reads the events stream", multiprocess_mode="livemin"
        )

    def served(self, role: str, old, new) -> None:
        """Point the info gauge of `role` from the old model (or None) to the new one."""
        if old is not None:
            self.model_info.labels(role, old.name, old.version, old.family, old.device).set(0)
        if new is not None:
            self.model_info.labels(role, new.name, new.version, new.family, new.device).set(1)

    def count(self, out) -> None:
        """Cache results and stale answers of one request's `Outcome`."""
        for result, n in (("hit", out.hits), ("miss", out.misses), ("uncached", out.uncached)):
            if n:
                self.cache.labels(result).inc(n)
        if out.stale:
            self.stale.inc(out.stale)
