"""The delivery loop end to end: an alert XADDed to the events stream reaches the SMTP server once and is
acknowledged; redelivered pending entries are not sent twice; `stockpred-notify run --once` does the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import yaml
from support.doc_commands import as_argv, doc_options

from stockpred_core.alerts import parse_subscription, put_subscription
from stockpred_core.io.stream_events import ALERTS_KEY, add_alert
from stockpred_core.notify.channels import EmailChannel
from stockpred_core.notify.consumer import DeliveryLoop, Subscribers
from stockpred_core.notify.dispatcher import SENT, Dispatcher

ALERT = {
    "subscriber": "desk",
    "rule": "above 0.02",
    "ticker": "MSFT",
    "value": 0.025,
    "threshold": 0.02,
    "message": "MSFT: prediction 0.025 rose above 0.02",
    "as_of": "2026-03-02T16:55:00+00:00",
    "model_version": "3",
}


def _loop(client, prefix, smtp_server, subscriptions, **kwargs) -> DeliveryLoop:
    dispatcher = Dispatcher(client, {"email": EmailChannel("127.0.0.1", smtp_server.port)}, prefix=prefix)
    loop = DeliveryLoop(client, dispatcher, Subscribers(subscriptions), group=f"{prefix}-group", **kwargs)
    loop.ensure_group("$")  # only what this test adds
    return loop


def test_the_loop_delivers_an_alert_event_by_email_and_acks_it(client, prefix, smtp_server):
    subscription = parse_subscription(
        {"subscriber": "desk", "rules": [{"kind": "above", "threshold": 0.02}], "channels": {"email": "d@example.com"}}
    )
    loop = _loop(client, prefix, smtp_server, [subscription])
    add_alert(client, ALERT)
    assert loop.run_once(block_ms=1) == 1
    [delivery] = loop.delivered
    assert delivery.status == SENT
    [message] = smtp_server.messages
    assert message["To"] == "d@example.com" and "MSFT" in message["Subject"]
    assert client.xpending(ALERTS_KEY, f"{prefix}-group")["pending"] == 0


def test_pending_entries_are_redelivered_after_a_crash_and_not_sent_twice(client, prefix, smtp_server):
    subscription = parse_subscription(
        {"subscriber": "desk", "rules": [{"kind": "above", "threshold": 0.02}], "channels": {"email": "d@example.com"}}
    )
    loop = _loop(client, prefix, smtp_server, [subscription], consumer="a")
    add_alert(client, ALERT)
    # a consumer read the entry, sent it, and died before acknowledging it
    [[_, [(entry_id, _)]]] = client.xreadgroup(f"{prefix}-group", "a", {ALERTS_KEY: ">"}, count=10)
    loop.dispatcher.deliver_alert({**ALERT, "id": entry_id.decode()}, subscription)
    assert len(smtp_server.messages) == 1
    restarted = _loop(client, prefix, smtp_server, [subscription], consumer="a")
    assert restarted.run_once(block_ms=1) == 1  # its own pending entry first
    assert [d.status for d in restarted.delivered] == ["duplicate"]
    assert len(smtp_server.messages) == 1
    assert client.xpending(ALERTS_KEY, f"{prefix}-group")["pending"] == 0


def test_the_console_command_delivers_with_a_subscriptions_file(client, prefix, redis_url, smtp_server, tmp_path):
    group = f"{prefix}-cli"
    client.xgroup_create(ALERTS_KEY, group, id="$", mkstream=True)
    subscriber = f"{prefix}-desk"
    path = tmp_path / "subscriptions.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "subscriptions": [
                    {
                        "subscriber": subscriber,
                        "rules": [{"kind": "above", "threshold": 0.02}],
                        "channels": {"email": "cli@example.com"},
                    }
                ]
            }
        )
    )
    add_alert(client, {**ALERT, "subscriber": subscriber})
    env = {
        **os.environ,
        "STOCKPRED_REDIS_URL": redis_url,
        "STOCKPRED_SMTP_HOST": "127.0.0.1",
        "STOCKPRED_SMTP_PORT": str(smtp_server.port),
        "STOCKPRED_SMTP_PASSWORD": "",
    }
    # the command docs/operations.md shows, with this test's file and group, and --once to return
    options = {**doc_options(r"stockpred-notify run "), "--subscriptions": str(path), "--group": group, "--once": None}
    program = str(Path(sys.executable).parent / "stockpred-notify")
    out = subprocess.run([program, "run", *as_argv(options)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [m["To"] for m in smtp_server.messages] == ["cli@example.com"]
    assert client.xpending(ALERTS_KEY, group)["pending"] == 0
    options = doc_options(r"stockpred-notify dead-letters")
    out = subprocess.run([program, "dead-letters", *as_argv(options)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(orjson.loads(line)["reason"] for line in out.stdout.splitlines())  # JSON lines, each with a reason


def test_subscriptions_from_the_redis_hash_carry_the_delivery_settings(client, prefix):
    subscription = parse_subscription(
        {
            "subscriber": "hash-desk",
            "rules": [{"kind": "top_n", "n": 5, "channels": ["webhook"]}],
            "channels": {"webhook": "https://hooks.example/x", "email": "h@example.com"},
            "quiet_hours": "22:00-07:00",
            "timezone": "Europe/Paris",
            "max_per_hour": 3,
        }
    )
    put_subscription(client, subscription, key=f"{prefix}:subs")
    stored = orjson.loads(client.hget(f"{prefix}:subs", "hash-desk"))
    assert stored["channels"] == {"webhook": "https://hooks.example/x", "email": "h@example.com"}
    assert parse_subscription(stored, subscriber="hash-desk") == subscription
    assert subscription.rule_channels("top_n 5") == ["webhook"]
