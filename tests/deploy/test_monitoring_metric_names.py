"""Every metric deploy/ queries exists (issue 16, defect 8): the PrometheusRule's recording rules and alerts and the
Grafana dashboard read names the started service exports on /metrics, names the stream worker's collector exports
(stream/metrics.py, run here), or names listed below with where they come from. The rules once read
`stockpred_prediction_cache_hits_total`, which nothing exported."""

import json
import re

import httpx
import pytest
import yaml
from prometheus_client import generate_latest
from support import ROOT
from support.service import build_world, serve

from stream import metrics as stream_metrics

MONITORING = ROOT / "deploy" / "k8s" / "components" / "monitoring"
# Not the service's: name -> where it comes from
ELSEWHERE = {
    "up": "Prometheus itself, per scrape target",
    "push_time_seconds": "the Pushgateway, per pushed group",
    "stockpred_drift_alert": "drift_report, pushed to the Pushgateway (stockpred_assets/monitoring/metrics.py)",
    "stockpred_drift_share": "drift_report, pushed to the Pushgateway",
    "stockpred_feature_psi": "drift_report, pushed to the Pushgateway",
    "stockpred_feature_drifting": "drift_report, pushed to the Pushgateway",
    "stockpred_model_rank_ic": "drift_report, pushed to the Pushgateway",
    "stockpred_model_error_ratio": "drift_report, pushed to the Pushgateway",
    "container_cpu_usage_seconds_total": "cAdvisor (kubelet)",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_deployment_spec_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_status_current_replicas": "kube-state-metrics",
    "kube_horizontalpodautoscaler_spec_max_replicas": "kube-state-metrics",
    "DCGM_FI_DEV_GPU_UTIL": "NVIDIA dcgm-exporter",
    "redis_up": "redis_exporter",
    "redis_memory_used_bytes": "redis_exporter",
    "redis_memory_max_bytes": "redis_exporter",
    "redis_keyspace_hits_total": "redis_exporter",
    "redis_keyspace_misses_total": "redis_exporter",
    "redis_commands_processed_total": "redis_exporter",
    "redis_evicted_keys_total": "redis_exporter",
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "avg", "max", "min", "count", "rate", "irate", "increase", "histogram_quantile", "clamp_min", "time",
    "topk", "bottomk", "abs", "le", "inf", "e", "d", "h", "m", "s",
}  # fmt: skip


def _names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, grouping lists and durations."""
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # range durations
    expr = re.sub(r"\$\w+|\"[^\"]*\"", " ", expr)  # Grafana variables, strings
    found = set(re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expr))
    return {name for name in found if name not in PROMQL_WORDS and not re.fullmatch(r"\d+\w*", name)}


def referenced() -> tuple[set[str], set[str]]:
    """(metric names the rules and dashboards query, names the rules record)."""
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    exprs, recorded = [], set()
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            exprs.append(rule["expr"])
            if "record" in rule:
                recorded.add(rule["record"])
    for dashboard in MONITORING.glob("*.json"):
        panels = json.loads(dashboard.read_text())["panels"]
        exprs += [target["expr"] for panel in panels for target in panel.get("targets", []) if "expr" in target]
    assert len(exprs) > 30
    return set().union(*map(_names, exprs)), recorded


def test_the_name_parser_sees_metrics_not_promql():
    expr = 'sum by (namespace) (rate(stockpred_cache_requests_total{job="x", result=~"hit|miss"}[15m])) / 1e-9'
    assert _names(expr) == {"stockpred_cache_requests_total"}
    assert _names("stockpred:errors:ratio_rate5m > 0.02 and on (namespace) up == 0") == {
        "stockpred:errors:ratio_rate5m",
        "up",
    }


def exported(metrics_text: str) -> set[str]:
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[A-Za-z_:][\w:]*", line)[0]
            names.add(name)
            names.add(re.sub(r"_(bucket|sum|count|created)$", "", name))  # a histogram's series
    return names


def exported_by_the_stream() -> set[str]:
    """What a stream worker process serves on /metrics (its collector, every counter and gauge given a value)."""
    values = {name: 1.0 for name in [*stream_metrics.HELP, *stream_metrics.GAUGES]}
    registry = stream_metrics.worker_registry(lambda: values, "stream-0")
    return exported(generate_latest(registry).decode())


def test_the_stream_metrics_deploy_reads_are_exported_and_all_charted():
    """Renaming a stream metric in stream/metrics.py, or querying one it does not export, fails here."""
    stream = exported_by_the_stream()
    assert "stockpred_stream_applied_total" in stream and "stockpred_stream_lag_seconds" in stream
    names, _ = referenced()
    queried = {name for name in names if name.startswith("stockpred_stream_")}
    assert not queried - stream, f"deploy/ queries stream metrics nothing exports: {sorted(queried - stream)}"
    alerted = ("applied_total", "lag_seconds", "refresh_seconds", "dead_lettered_total", "group_recreated_total")
    assert {f"stockpred_stream_{name}" for name in alerted} <= queried
    charted = set()
    for dashboard in MONITORING.glob("*.json"):
        panels = json.loads(dashboard.read_text())["panels"]
        charted |= {n for p in panels for t in p.get("targets", []) for n in _names(t["expr"])}
    assert not stream - charted, f"the dashboard does not chart {sorted(stream - charted)}"
    assert not (stream & set(ELSEWHERE)), "listed as external but the stream worker exports it"


@pytest.mark.slow
def test_every_metric_deploy_reads_is_exported_or_known(tmp_path, redis_url):
    world = build_world(tmp_path / "world", 10, redis_url.rsplit("/", 1)[0] + "/7")
    with serve(world.env, tmp_path / "bento.log") as base:
        headers = {"X-API-Key": world.keys["reader"]}
        for _ in range(2):  # a miss, then a hit: labelled counters appear once counted
            assert httpx.post(f"{base}/predict", json={"ticker": "T00001"}, headers=headers).status_code == 200
        httpx.post(f"{base}/predict", json={"ticker": "T00001"}, headers={"X-API-Key": world.keys["slow"]})
        httpx.post(f"{base}/predict", json={"ticker": "T00001"}, headers={"X-API-Key": world.keys["slow"]})
        service = exported(httpx.get(f"{base}/metrics").text)
    names, recorded = referenced()
    missing = {name for name in names - recorded - service - exported_by_the_stream() if name not in ELSEWHERE}
    assert not missing, f"deploy/ queries metrics nothing exports: {sorted(missing)}"
    assert {"stockpred_cache_requests_total", "bentoml_service_request_total"} <= names & service
    assert not (set(ELSEWHERE) & service), "listed as external but the service exports it"
    pushed = (ROOT / "stockpred_assets" / "monitoring" / "metrics.py").read_text()
    assert all(f'"{name}"' in pushed for name, where in ELSEWHERE.items() if where.startswith("drift_report"))
