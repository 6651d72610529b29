"""What an alert says on every channel: a subject, a plain text, a small HTML body and the webhook's JSON."""

from __future__ import annotations

import html
from collections.abc import Mapping

from stockpred_core.notify.channels import Notification

_FIELDS = ("id", "subscriber", "rule", "ticker", "value", "threshold", "message", "as_of", "model_version")


def alert_notification(alert: Mapping) -> Notification:
    """The notification of one alert (the events stream's alert with its entry `id`)."""
    subject = f"stockpred alert: {alert.get('ticker')} ({alert.get('rule')})"
    lines = [
        str(alert.get("message", "")),
        f"rule: {alert.get('rule')}; value {_number(alert.get('value'))}, threshold {_number(alert.get('threshold'))}",
        f"as of {alert.get('as_of')}, model version {alert.get('model_version')}",
    ]
    rows = "".join(
        f"<tr><th style='text-align:left;padding:2px 8px'>{html.escape(k)}</th>"
        f"<td style='padding:2px 8px'>{html.escape(str(alert.get(k)))}</td></tr>"
        for k in _FIELDS
        if k in alert
    )
    body = (
        f"<div style='font-family:sans-serif'><p>{html.escape(str(alert.get('message', '')))}</p>"
        f"<table style='border-collapse:collapse'>{rows}</table></div>"
    )
    payload = {k: alert[k] for k in _FIELDS if k in alert}
    return Notification(subject=subject, text="\n".join(lines), html=body, payload=payload)


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
