"""What the monitoring sensors need: where alerts are posted, how often drift may retrain, where the UI is."""

from __future__ import annotations

import logging

import dagster as dg
import httpx
from pydantic import Field

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
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                return f"posted to the webhook (HTTP {response.status_code})"
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code < 500:
                break  # the webhook refuses this payload: trying again will not help
        log.error("alert not delivered to the webhook: %s", problem)
        raise AlertDeliveryError(f"alert not delivered to the webhook: {problem}")
