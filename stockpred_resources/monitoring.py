"""What monitoring needs: where alerts are posted and metrics pushed, how often drift may retrain, where the UI is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import dagster as dg
import httpx
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from pydantic import Field

from stockpred_core.redaction import redact, redact_url

log = logging.getLogger("stockpred.alerts")


class AlertDeliveryError(RuntimeError):
    """The webhook did not accept an alert."""


class MonitoringResource(dg.ConfigurableResource):
    webhook_url: str | None = Field(
        default=None, description="Alerts are POSTed here as JSON (Slack/Teams-style `text` included); unset: log only"
    )
    timeout_seconds: float = Field(default=10.0, description="Per request")
    attempts: int = Field(default=2, ge=1, description="Tries per alert (a transport error or a 5xx is retried)")
    drift_retrain_cooldown_days: float = Field(
        default=7.0, ge=0, description="At most one retraining run requested for drift in this many days"
    )
    drift_alert_max_age_days: float | None = Field(
        default=7.0, description="Drift alerts about days older than this do not retrain (a backfill of old reports)"
    )
    dagster_ui_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of run links in alerts")
    pushgateway_url: str | None = Field(
        default=None, description="Prometheus Pushgateway for drift and live-model metrics; unset: not pushed"
    )

    def is_recent(self, day) -> bool:
        """Whether a report about `day` is current enough to act on (retrain, or replace the pushed metrics)."""
        if self.drift_alert_max_age_days is None:
            return True
        age = datetime.now(UTC).date() - day.date()
        return age.days <= self.drift_alert_max_age_days

    def push_gauges(self, job: str, gauges: list[tuple[str, str, dict[str, str], float]]) -> str:
        """Replace the metrics of `job` on the Pushgateway with `gauges` ((name, help, labels, value) each), so a
        series that is no longer reported disappears; what happened, as text. A gateway that cannot be reached is
        logged, not raised: the report stands, and the `push_time_seconds` staleness alert notices the gap."""
        if not self.pushgateway_url:
            return "not pushed (set STOCKPRED_PUSHGATEWAY_URL)"
        registry = CollectorRegistry()
        metrics: dict[str, Gauge] = {}
        for name, doc, labels, value in gauges:
            if name not in metrics:
                metrics[name] = Gauge(name, doc, sorted(labels), registry=registry)
            (metrics[name].labels(**labels) if labels else metrics[name]).set(value)
        try:
            push_to_gateway(self.pushgateway_url, job=job, registry=registry, timeout=self.timeout_seconds)
        except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
            log.warning("metrics not pushed to %s: %s", redact_url(self.pushgateway_url), redact(str(exc)))
            return f"push to {redact_url(self.pushgateway_url)} failed: {redact(str(exc))}"
        return f"{len(gauges)} series pushed to {redact_url(self.pushgateway_url)} (job {job})"

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}"

    def send(self, payload: dict) -> str:
        """Log the alert, then POST it to the webhook when one is configured; what happened, as text.

        Raises AlertDeliveryError when the webhook refuses it or cannot be reached after `attempts` tries."""
        log.error("ALERT %s", payload.get("text", payload))
        if not self.webhook_url:
            return "logged (no webhook configured: set STOCKPRED_ALERT_WEBHOOK_URL)"
        problem = ""
        for _ in range(self.attempts):
            try:
                response = httpx.post(self.webhook_url, json=payload, timeout=self.timeout_seconds)
            except httpx.HTTPError as exc:
                problem = redact(f"{type(exc).__name__}: {exc}", [self.webhook_url])  # a webhook URL is a secret
                continue
            if response.status_code < 300:
                return f"posted to the webhook (HTTP {response.status_code})"
            problem = redact(f"HTTP {response.status_code}: {response.text[:200]}", [self.webhook_url])
            if response.status_code < 500:
                break  # the webhook refuses this payload: trying again will not help
        log.error("alert not delivered to the webhook: %s", problem)
        raise AlertDeliveryError(f"alert not delivered to the webhook: {problem}")
