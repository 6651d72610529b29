"""Drift and live-model metrics on a real Prometheus Pushgateway: what drift_report pushes and when, under the
names deploy/k8s's PrometheusRule alerts on."""

import datetime as dt

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stockpred_assets.monitoring.metrics import drift_gauges
from stockpred_assets.monitoring.reference import ChampionFacts
from stockpred_core.io.model_card import ModelCard
from stockpred_core.monitoring.performance import Baseline
from stockpred_core.monitoring.verdict import ALERT, NO_SESSION, OK
from stockpred_resources.monitoring import MonitoringResource

# the help texts drift_report pushes: the gateway warns when groups disagree on a family's help
PSI_HELP = "PSI against the champion's training window"
IC_HELP = "Rank IC of the champion's recent live predictions"
ALERT_HELP = "1 when the day's drift verdict is alert"


def gateway_samples(url: str, job: str) -> dict[tuple[str, tuple], float]:
    """The samples the gateway serves for `job` (as Prometheus would scrape them): {(name, labels): value}."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("job") == job and sample.name.startswith("stockpred_"):
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "instance")))
                out[(sample.name, labels)] = sample.value
    return out


def champion() -> ChampionFacts:
    baseline = Baseline(rank_ic=0.03, ic=0.02, mse_vs_naive=0.98, horizon=5, label="return")
    segments = {"train": (pd.Timestamp("2023-01-02"), pd.Timestamp("2024-06-28")),
                "test": (pd.Timestamp("2024-09-02"), pd.Timestamp("2024-12-31"))}  # fmt: skip
    card = ModelCard("stockpred", "7", "run", "lightgbm", feature_set_version="v1", segments=segments)
    return ChampionFacts(card, baseline)


def test_push_replaces_the_jobs_series_and_an_unreachable_gateway_is_not_fatal(pushgateway_url):
    monitoring = MonitoringResource(pushgateway_url=pushgateway_url)
    first = [
        ("stockpred_feature_psi", PSI_HELP, {"feature": "ret_5"}, 0.31),
        ("stockpred_feature_psi", PSI_HELP, {"feature": "rsi_14"}, 0.02),
        ("stockpred_model_rank_ic", IC_HELP, {"model": "lightgbm", "version": "7"}, -0.01),
        ("stockpred_drift_alert", ALERT_HELP, {}, 1.0),
    ]
    assert monitoring.push_gauges("stockpred-test", first).startswith("4 series pushed")
    assert gateway_samples(pushgateway_url, "stockpred-test") == {
        ("stockpred_feature_psi", (("feature", "ret_5"),)): 0.31,
        ("stockpred_feature_psi", (("feature", "rsi_14"),)): 0.02,
        ("stockpred_model_rank_ic", (("model", "lightgbm"), ("version", "7"))): -0.01,
        ("stockpred_drift_alert", ()): 1.0,
    }
    monitoring.push_gauges("stockpred-test", first[1:2])  # the next report: only what it says remains
    assert gateway_samples(pushgateway_url, "stockpred-test") == {
        ("stockpred_feature_psi", (("feature", "rsi_14"),)): 0.02
    }
    text = httpx.get(f"{pushgateway_url}/metrics", timeout=5).text
    assert 'push_time_seconds{instance="",job="stockpred-test"}' in text  # what StockpredDriftChecksStale reads

    down = MonitoringResource(pushgateway_url="http://127.0.0.1:9", timeout_seconds=1)
    assert down.push_gauges("stockpred-test", first).startswith("push to http://127.0.0.1:9 failed")
    assert MonitoringResource().push_gauges("stockpred-test", first) == "not pushed (set STOCKPRED_PUSHGATEWAY_URL)"


def test_only_current_days_count():
    today = pd.Timestamp(dt.datetime.now(dt.UTC).date())
    monitoring = MonitoringResource(drift_alert_max_age_days=7)
    assert monitoring.is_recent(today) and monitoring.is_recent(today - pd.Timedelta(days=7))
    assert not monitoring.is_recent(today - pd.Timedelta(days=8))
    assert MonitoringResource(drift_alert_max_age_days=None).is_recent(pd.Timestamp("2001-01-02"))


def test_drift_gauges_take_the_newest_session():
    days = pd.to_datetime(["2025-03-07", "2025-03-10"])
    summary = pd.DataFrame(
        {
            "date": [*days, pd.Timestamp("2025-03-08")],
            "status": [OK, ALERT, NO_SESSION],
            "drift_share": [0.0, 0.35, None],
            "live_rank_ic": [0.05, -0.02, None],
            "live_mse_vs_naive": [1.0, 1.47, None],
        }
    ).sort_values("date")
    per_feature = pd.DataFrame(
        {
            "date": [days[0], days[0], days[1], days[1]],
            "feature": ["ret_5", "rsi_14", "ret_5", "rsi_14"],
            "psi": [0.01, 0.02, 0.4, float("nan")],
            "drifting": [False, False, True, False],
        }
    )
    gauges = {
        (name, tuple(sorted(labels.items()))): value
        for name, _, labels, value in drift_gauges(summary, per_feature, champion())
    }
    model = (("model", "lightgbm"), ("version", "7"))
    assert gauges == {
        ("stockpred_drift_alert", ()): 1.0,
        ("stockpred_drift_share", ()): 0.35,
        ("stockpred_feature_psi", (("feature", "ret_5"),)): 0.4,  # rsi_14 had no PSI that day: not reported
        ("stockpred_feature_drifting", (("feature", "ret_5"),)): 1.0,
        ("stockpred_model_rank_ic", model): -0.02,
        ("stockpred_model_error_ratio", model): pytest.approx(1.47 / 0.98),
    }
