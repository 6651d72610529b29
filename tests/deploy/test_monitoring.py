"""The monitoring component of deploy/k8s (CRDs), checked offline against the objects it watches: ServiceMonitors
select Services and their ports, the PrometheusRule covers the golden signals, and the Grafana dashboard charts
the recorded series. tests/deploy/test_monitoring_metric_names.py checks the metric names against the service."""

import json
import re

from k8s_manifests import find


def promql_balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())


def test_service_monitors_select_services_and_their_ports(docs):
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    names = {"stockpred-bento", "redis", "pushgateway", "stockpred-stream", "stockpred-dashboard"}
    assert {m["metadata"]["name"] for m in monitors} == names
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        spec = monitor["spec"]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [s for s in services if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels"}
            assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected), endpoint
            assert re.fullmatch(r"\d+[sm]", endpoint["interval"])


def test_rules_cover_the_golden_signals_cache_drift_and_model(docs):
    rule = find(docs, "PrometheusRule", "stockpred")
    assert set(rule["spec"]) == {"groups"} and rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    records, alerts = {}, {}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"]
        for r in group["rules"]:
            assert ("record" in r) != ("alert" in r), r
            assert isinstance(r["expr"], str) and promql_balanced(r["expr"]), r["expr"]
            if "record" in r:
                assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r["record"]), r["record"]
                records[r["record"]] = r["expr"]
            else:
                assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
                assert r["labels"]["severity"] in {"warning", "critical"} and r["annotations"]["summary"]
                assert re.fullmatch(r"\d+[smhd]", r.get("for", "0m")), r["for"]
                alerts[r["alert"]] = r["expr"]
    used = {name for expr in [*records.values(), *alerts.values()] for name in re.findall(r"stockpred:[\w:]+", expr)}
    assert used <= set(records), f"rules use undefined recordings: {used - set(records)}"
    signals = {
        "latency": "StockpredPredictionLatencyHigh",
        "traffic": "StockpredNoTraffic",
        "errors": "StockpredPredictionErrors",
        "saturation": "StockpredCPUSaturated",
        "cache hit rate": "StockpredCacheHitRateLow",
        "drift": "StockpredFeatureDrift",
        "model": "StockpredModelRankICNegative",
    }
    missing = {signal: name for signal, name in signals.items() if name not in alerts}
    assert not missing
    assert "StockpredGPUSaturated" in alerts and "StockpredAtMaxReplicas" in alerts and "StockpredRedisDown" in alerts


# stream alert -> (what its expression must read, whether it holds only during the session)
STREAM_ALERTS = {
    "StockpredStreamWorkerDown": ('up{job="stockpred-stream"}', False),
    "StockpredStreamLagHigh": ("stockpred_stream_lag_seconds", True),
    "StockpredStreamStalled": ("rate(stockpred_stream_applied_total", True),
    "StockpredStreamDeadLetters": ("increase(stockpred_stream_dead_lettered_total", False),
    "StockpredStreamGroupRecreated": ("increase(stockpred_stream_group_recreated_total", False),
    "StockpredStreamEntriesTrimmed": ("increase(stockpred_stream_trimmed_total", False),
    "StockpredStreamRefreshSlow": ("stockpred_stream_refresh_seconds", True),
}


def test_the_stream_worker_is_scraped_and_alerted_on_during_the_session(docs):
    """The worker's Service is scraped on its metrics port; the alerts that bars must be flowing for (lag,
    throughput, refresh time) hold only during the regular session, which a recording rule approximates in UTC."""
    monitor = find(docs, "ServiceMonitor", "stockpred-stream")["spec"]
    service = find(docs, "Service", "stockpred-stream")  # the job label Prometheus gives its targets: its name
    assert monitor["selector"]["matchLabels"] == {"app.kubernetes.io/name": "stockpred-stream"}
    assert [e["port"] for e in monitor["endpoints"]] == [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    groups = find(docs, "PrometheusRule", "stockpred")["spec"]["groups"]
    rules = {r.get("alert") or r["record"]: r for g in groups for r in g["rules"]}
    session = rules["stockpred:market:regular_session"]["expr"]
    assert "day_of_week() >= 1 and day_of_week() <= 5" in session
    assert "hour() * 60 + minute() >= 870 and hour() < 20" in session  # 14:30-20:00 UTC, open in EST and in EDT
    for name, (reads, in_session) in STREAM_ALERTS.items():
        expr = rules[name]["expr"]
        assert reads in expr and 'job="stockpred-stream"' in expr, name
        assert ("and on () stockpred:market:regular_session" in expr) == in_session, name
    assert rules["StockpredStreamWorkerDown"]["labels"]["severity"] == "critical"
    assert rules["StockpredStreamStalled"]["for"] == "10m" and rules["StockpredStreamLagHigh"]["for"] == "5m"
    assert "> 60" in rules["StockpredStreamLagHigh"]["expr"] and "> 1" in rules["StockpredStreamRefreshSlow"]["expr"]


def test_the_grafana_dashboard_charts_the_recorded_signals(docs):
    config = find(docs, "ConfigMap", "stockpred-grafana-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["stockpred-dashboard.json"])
    assert dashboard["uid"] and dashboard["title"] == "stockpred"
    charts = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " ".join(p["title"] for p in charts).lower()
    for word in ("traffic", "errors", "latency", "saturation", "cache", "drift", "rank ic", "stream"):
        assert word in titles, word
    exprs = [t["expr"] for p in charts for t in p["targets"]]
    assert all(promql_balanced(e) for e in exprs)
    groups = find(docs, "PrometheusRule", "stockpred")["spec"]["groups"]
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    used = {name for e in exprs for name in re.findall(r"stockpred:[\w:]+", e)}
    assert used and used <= records, used - records
    grid = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]]
    assert len(grid) == len(set(grid)), "panels overlap"
