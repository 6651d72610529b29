"""The issue's end-to-end promise: a subscription created in the dashboard (its form, in headless Chromium) delivers
an email to a local SMTP server. The rule engine the stream worker runs (`stockpred_core.alerts.Alerts`) sees a
prediction cross the rule, its alert goes to the events and alerts streams as the worker writes it
(`publish_alerts`), and `stockpred-notify run --once` delivers it through the email channel configured by the
STOCKPRED_SMTP_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import redis
from selenium.webdriver.common.by import By
from support.smtp_server import SmtpServer

from dashboard.harness import open_page, wait_until
from stockpred_core.alerts import Alerts, publish_alerts, read_subscriptions
from stockpred_core.io.stream_events import ALERTS_KEY

pytestmark = pytest.mark.slow

SUBSCRIBER = "desk-mail"
ADDRESS = "analyst@example.com"
TICKER = "T0007"


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


def _answer(prediction: float) -> dict:
    """A refreshed answer as the service serves it and the worker evaluates it."""
    now = pd.Timestamp.now(tz="UTC").isoformat()
    return {"ticker": TICKER, "prediction": prediction, "interval_low": prediction - 0.01,
            "interval_high": prediction + 0.01, "feature_date": "2026-12-07", "feature_time": now,
            "model_version": "3"}  # fmt: skip


def test_a_subscription_made_in_the_dashboard_delivers_an_email(chromium, dashboard_url, world, smtp_server):
    open_page(chromium, dashboard_url + "/alerts")
    form = {"sub-subscriber": SUBSCRIBER, "sub-tickers": TICKER, "sub-rules": "above 0.05 @email",
            "sub-channels": f"email={ADDRESS}", "sub-cooldown": "60"}  # fmt: skip
    for field, value in form.items():
        box = chromium.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    chromium.find_element(By.ID, "sub-save").click()
    client = redis.Redis.from_url(world.redis_url)
    (subscription,) = wait_until(lambda: [s for s in read_subscriptions(client) if s.subscriber == SUBSCRIBER])
    assert subscription.channels == {"email": ADDRESS}

    group = "test-dashboard-delivery"
    client.xgroup_create(ALERTS_KEY, group, id="$", mkstream=True)  # the notifier's group: from now on
    # the worker's alerting, configured from the Redis hash the dashboard wrote: below the rule, then across it
    alerts = Alerts.configured(client)
    assert not [a for a in alerts.evaluate([_answer(0.01)]) if a["subscriber"] == SUBSCRIBER]
    fired = [a for a in alerts.evaluate([_answer(0.08)]) if a["subscriber"] == SUBSCRIBER]
    assert [(a["ticker"], a["rule"]) for a in fired] == [(TICKER, "above 0.05")]
    pipe = client.pipeline()
    assert publish_alerts(pipe, fired) == 1
    pipe.execute()

    env = {**os.environ, "STOCKPRED_REDIS_URL": world.redis_url, "STOCKPRED_SMTP_HOST": "127.0.0.1",
           "STOCKPRED_SMTP_PORT": str(smtp_server.port), "STOCKPRED_SMTP_PASSWORD": ""}  # fmt: skip
    program = str(Path(sys.executable).parent / "stockpred-notify")
    out = subprocess.run(
        [program, "run", "--group", group, "--once"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    (message,) = [m for m in smtp_server.messages if m["To"] == ADDRESS]
    assert message["Subject"] == f"stockpred alert: {TICKER} (above 0.05)"
    body = message.get_body(("plain",)).get_content()
    assert TICKER in body and "0.08" in body
    assert client.xpending(ALERTS_KEY, group)["pending"] == 0
