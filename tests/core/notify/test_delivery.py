"""The dispatcher's guarantees against real servers and a real Redis: one delivery per (alert, subscriber, channel)
through retries and redeliveries, dead letters with a redacted reason, the rate limit and quiet hours."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from support.recorded_server import Reply

from stockpred_core.alerts import parse_subscription
from stockpred_core.notify.channels import EmailChannel, SlackChannel, SmsChannel, WebhookChannel
from stockpred_core.notify.dispatcher import (
    DEAD,
    DUPLICATE,
    QUIET_HOURS,
    RATE_LIMITED,
    SENT,
    Dispatcher,
    FileIdempotency,
    read_records,
)
from stockpred_core.resilience.retry import RetryPolicy

NOON_UTC = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)  # 12:00 in New York


def _alert(alert_id: str = "1700000000000-0", rule: str = "above 0.02") -> dict:
    return {
        "id": alert_id,
        "subscriber": "desk",
        "rule": rule,
        "ticker": "AAPL",
        "value": 0.031,
        "threshold": 0.02,
        "message": "AAPL: prediction 0.031 rose above 0.02",
        "as_of": "2026-03-02T16:55:00+00:00",
        "model_version": "7",
    }


def _subscription(**delivery):
    rules = delivery.pop("rules", [{"kind": "above", "threshold": 0.02}])
    return parse_subscription({"subscriber": "desk", "rules": rules, **delivery})


def _dispatcher(client, prefix, channels, *, now=NOON_UTC, attempts=3):
    retry = RetryPolicy(max_attempts=attempts, backoff_base_s=0.01, backoff_max_s=0.01)
    return Dispatcher(client, channels, retry=retry, now=lambda: now, sleep=lambda s: None, prefix=prefix)


def test_every_channel_of_the_subscriber_delivers(client, prefix, smtp_server, http_server):
    http_server.route("/slack", Reply.text("ok", 200))
    http_server.route("/hook", Reply.json("{}"))
    sms_path = "/2010-04-01/Accounts/AC1/Messages.json"
    http_server.route(sms_path, Reply.json(json.dumps({"sid": "SM1", "status": "queued"}), status=201))
    channels = {
        "email": EmailChannel("127.0.0.1", smtp_server.port),
        "slack": SlackChannel(),
        "sms": SmsChannel("AC1", "token", "+15550001", base_url=http_server.url),
        "webhook": WebhookChannel("whsec"),
    }
    subscription = _subscription(
        channels={
            "email": "desk@example.com",
            "slack": f"{http_server.url}/slack",
            "sms": "+15550100",
            "webhook": f"{http_server.url}/hook",
        }
    )
    out = _dispatcher(client, prefix, channels).deliver_alert(_alert(), subscription)
    assert {(d.channel, d.status) for d in out} == {(c, SENT) for c in ("email", "slack", "sms", "webhook")}
    assert len(smtp_server.messages) == 1 and "AAPL" in smtp_server.messages[0]["Subject"]
    assert [len(http_server.posts(p)) for p in ("/slack", "/hook", sms_path)] == [1, 1, 1]
    assert json.loads(http_server.posts("/hook")[0].body)["id"] == "1700000000000-0"


def test_a_rule_sends_only_on_its_channels(client, prefix, smtp_server, http_server):
    http_server.route("/slack", Reply.text("ok", 200))
    subscription = _subscription(
        channels={"email": "desk@example.com", "slack": f"{http_server.url}/slack"},
        rules=[{"kind": "above", "threshold": 0.02, "channels": ["slack"]}],
    )
    channels = {"email": EmailChannel("127.0.0.1", smtp_server.port), "slack": SlackChannel()}
    out = _dispatcher(client, prefix, channels).deliver_alert(_alert(), subscription)
    assert [(d.channel, d.status) for d in out] == [("slack", SENT)]
    assert smtp_server.messages == []


def test_a_5xx_then_200_delivers_once(client, prefix, http_server):
    http_server.route("/hook", Reply.text("busy", 503), Reply.text("busy", 502), Reply.json("{}"))
    subscription = _subscription(channels={"webhook": f"{http_server.url}/hook"})
    dispatcher = _dispatcher(client, prefix, {"webhook": WebhookChannel()})
    [delivery] = dispatcher.deliver_alert(_alert(), subscription)
    assert (delivery.status, delivery.attempts) == (SENT, 3)
    posts = http_server.posts("/hook")
    assert len(posts) == 3 and len({p.headers["idempotency-key"] for p in posts}) == 1  # the same key each try
    # the same alert again (a redelivery): nothing is sent
    assert [d.status for d in dispatcher.deliver_alert(_alert(), subscription)] == [DUPLICATE]
    assert len(http_server.posts("/hook")) == 3


def test_smtp_temporary_failure_is_retried_then_delivered_once(client, prefix, smtp_server):
    smtp_server.fail_next = ["451 4.3.0 greylisted, try again"]
    subscription = _subscription(channels={"email": "desk@example.com"})
    dispatcher = _dispatcher(client, prefix, {"email": EmailChannel("127.0.0.1", smtp_server.port)})
    [delivery] = dispatcher.deliver_alert(_alert(), subscription)
    assert (delivery.status, delivery.attempts, len(smtp_server.messages)) == (SENT, 2, 1)


def test_a_redelivered_alert_is_not_sent_twice_even_by_another_dispatcher(client, prefix, smtp_server):
    subscription = _subscription(channels={"email": "desk@example.com"})
    channels = {"email": EmailChannel("127.0.0.1", smtp_server.port)}
    first, second = _dispatcher(client, prefix, channels), _dispatcher(client, prefix, channels)
    assert [d.status for d in first.deliver_alert(_alert("5-0"), subscription)] == [SENT]
    assert [d.status for d in second.deliver_alert(_alert("5-0"), subscription)] == [DUPLICATE]
    assert [d.status for d in second.deliver_alert(_alert("6-0"), subscription)] == [SENT]  # another alert
    assert len(smtp_server.messages) == 2


def test_a_permanent_4xx_is_dead_lettered_with_the_reason_and_without_the_secret(client, prefix, http_server):
    http_server.route("/2010-04-01/Accounts/AC1/Messages.json", Reply.json('{"code": 20003, "message": "Authenticate '
                      'with token tw-SECRET-token failed", "status": 401}', status=401))  # fmt: skip
    subscription = _subscription(channels={"sms": "+15550100"})
    channels = {"sms": SmsChannel("AC1", "tw-SECRET-token", "+15550001", base_url=http_server.url)}
    [delivery] = _dispatcher(client, prefix, channels).deliver_alert(_alert(), subscription)
    assert (delivery.status, delivery.attempts) == (DEAD, 1)  # not retried
    [record] = read_records(client, f"{prefix}:dead")
    assert record["channel"] == "sms" and record["alert_id"] == "1700000000000-0" and record["subscriber"] == "desk"
    assert "HTTP 401" in record["reason"] and "20003" in record["reason"]
    assert "tw-SECRET-token" not in json.dumps(record) and "tw-SECRET-token" not in delivery.reason


def test_transient_failures_past_the_last_try_are_dead_lettered(client, prefix, http_server):
    http_server.route("/services/T/B/SECRETPATH", Reply.text("down", 500))
    url = f"{http_server.url}/services/T/B/SECRETPATH"
    subscription = _subscription(channels={"slack": url})
    dispatcher = _dispatcher(client, prefix, {"slack": SlackChannel()}, attempts=3)
    [delivery] = dispatcher.deliver_alert(_alert(), subscription)
    assert (delivery.status, delivery.attempts) == (DEAD, 3)
    [record] = read_records(client, f"{prefix}:dead")
    assert "HTTP 500" in record["reason"] and "SECRETPATH" not in json.dumps(record)


def test_a_channel_that_is_not_configured_is_dead_lettered(client, prefix):
    subscription = _subscription(channels={"email": "desk@example.com"})
    [delivery] = _dispatcher(client, prefix, {}).deliver_alert(_alert(), subscription)
    assert delivery.status == DEAD and "not configured" in delivery.reason


def test_the_rate_limit_drops_and_records_alerts_past_max_per_hour(client, prefix, smtp_server):
    subscription = _subscription(channels={"email": "desk@example.com"}, max_per_hour=2)
    dispatcher = _dispatcher(client, prefix, {"email": EmailChannel("127.0.0.1", smtp_server.port)})
    statuses = [dispatcher.deliver_alert(_alert(f"{i}-0"), subscription)[0].status for i in range(1, 5)]
    assert statuses == [SENT, SENT, RATE_LIMITED, RATE_LIMITED]
    assert len(smtp_server.messages) == 2
    records = read_records(client, f"{prefix}:suppressed")
    assert [r["reason"] for r in records] == [RATE_LIMITED] * 2 and {r["alert_id"] for r in records} == {"3-0", "4-0"}
    # a dropped alert stays dropped when it is redelivered
    assert dispatcher.deliver_alert(_alert("3-0"), subscription)[0].status == DUPLICATE


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [
        (dt.datetime(2026, 3, 3, 4, 0, tzinfo=dt.UTC), True),  # 23:00 in New York
        (dt.datetime(2026, 3, 3, 11, 30, tzinfo=dt.UTC), True),  # 06:30
        (dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC), False),  # 07:00: the window's end is not in it
        (NOON_UTC, False),
    ],
)
def test_quiet_hours_in_the_subscribers_time_zone_drop_and_record(client, prefix, smtp_server, utc, quiet):
    subscription = _subscription(
        channels={"email": "desk@example.com"}, quiet_hours="22:00-07:00", timezone="America/New_York"
    )
    dispatcher = _dispatcher(client, prefix, {"email": EmailChannel("127.0.0.1", smtp_server.port)}, now=utc)
    [delivery] = dispatcher.deliver_alert(_alert(), subscription)
    assert delivery.status == (QUIET_HOURS if quiet else SENT)
    assert len(smtp_server.messages) == (0 if quiet else 1)
    records = read_records(client, f"{prefix}:suppressed")
    assert [r["reason"] for r in records] == ([QUIET_HOURS] if quiet else [])


def test_without_redis_a_folder_keeps_the_idempotency_keys(tmp_path, smtp_server):
    subscription = _subscription(channels={"email": "desk@example.com"})
    channels = {"email": EmailChannel("127.0.0.1", smtp_server.port)}
    for _ in range(2):
        dispatcher = Dispatcher(None, channels, store=FileIdempotency(tmp_path), now=lambda: NOON_UTC)
        dispatcher.deliver_alert(_alert(), subscription)
    assert len(smtp_server.messages) == 1


def test_delivery_settings_are_validated():
    with pytest.raises(ValueError, match="quiet_hours must look like"):
        _subscription(quiet_hours="10pm-7am")
    with pytest.raises(ValueError, match="unknown time zone"):
        _subscription(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="no address for"):
        _subscription(rules=[{"kind": "above", "threshold": 0.02, "channels": ["sms"]}])
    assert _subscription(daily_report=True, rules=[], channels={"email": "a@example.com"}).rules == ()
