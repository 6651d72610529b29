"""Alert rules against real answers and a real redis-server: each rule kind fires on its crossing and not while the
condition stays, the cool-down holds a flapping value to one alert, top/bottom n alert on entering, subscriptions
validate with errors naming the subscriber and the rule, reload from Redis (a bad entry skipped), the state survives a
new engine, and alerts land in the events stream."""

from __future__ import annotations

import json
import logging
import time

import pytest

from stockpred_core.alerts import (
    AlertEngine,
    RedisSubscriptions,
    Subscription,
    SubscriptionError,
    delete_subscription,
    load_subscriptions,
    parse_subscription,
    parse_subscriptions,
    publish_alerts,
    put_subscription,
    read_subscriptions,
    version_key,
)
from stockpred_core.io.stream_events import ALERT, ALERTS_KEY, EVENTS_KEY, parse_event

T = "2024-03-01T15:30:00Z"


def answer(ticker: str, prediction: float | None, low: float | None = None, high: float | None = None, t: str = T):
    """An answer document with the fields the engine reads (the interval around the prediction by default)."""
    return {
        "ticker": ticker,
        "prediction": prediction,
        "predicted_return": prediction,
        "interval_low": (prediction - 0.05 if prediction is not None else None) if low is None else low,
        "interval_high": (prediction + 0.05 if prediction is not None else None) if high is None else high,
        "model_version": "7",
        "feature_date": T[:10],
        "feature_time": t,
    }


def sub(*rules: dict, subscriber: str = "alice", tickers=None, cooldown_s: float = 0.0) -> Subscription:
    data = {"subscriber": subscriber, "rules": list(rules), "cooldown_s": cooldown_s}
    if tickers is not None:
        data["tickers"] = tickers
    return parse_subscription(data)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fired(engine: AlertEngine, *answers: dict) -> list[tuple[str, str, str]]:
    return [(a["subscriber"], a["rule"], a["ticker"]) for a in engine.evaluate(list(answers))]


# --- rule kinds ---


def test_above_alerts_on_crossing_not_while_staying_and_rearms_when_false():
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.02})])
    assert fired(engine, answer("AAA", 0.01), answer("BBB", 0.02)) == []  # 0.02 is not > 0.02
    alerts = engine.evaluate([answer("AAA", 0.03), answer("BBB", 0.0201)])
    assert [(a["ticker"], a["rule"], a["value"], a["threshold"]) for a in alerts] == [
        ("AAA", "above 0.02", 0.03, 0.02),
        ("BBB", "above 0.02", 0.0201, 0.02),
    ]
    assert alerts[0] == {
        "subscriber": "alice",
        "rule": "above 0.02",
        "ticker": "AAA",
        "value": 0.03,
        "threshold": 0.02,
        "message": "AAA: prediction 0.03 rose above 0.02",
        "as_of": T,
        "model_version": "7",
    }
    assert fired(engine, answer("AAA", 0.04), answer("BBB", 0.05)) == []  # staying above
    assert fired(engine, answer("AAA", 0.0)) == []  # going false re-arms
    assert fired(engine, answer("AAA", 0.03)) == [("alice", "above 0.02", "AAA")]


def test_below_alerts_on_crossing_down():
    engine = AlertEngine([sub({"kind": "below", "threshold": -0.01})])
    assert fired(engine, answer("AAA", 0.0), answer("BBB", -0.01)) == []
    alerts = engine.evaluate([answer("AAA", -0.02)])
    assert [(a["ticker"], a["message"]) for a in alerts] == [("AAA", "AAA: prediction -0.02 fell below -0.01")]
    assert fired(engine, answer("AAA", -0.03)) == []
    assert fired(engine, answer("AAA", 0.0)) == []
    assert fired(engine, answer("AAA", -0.05)) == [("alice", "below -0.01", "AAA")]


def test_a_missing_prediction_neither_alerts_nor_rearms():
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.0})])
    assert fired(engine, answer("AAA", 0.01)) == [("alice", "above 0", "AAA")]
    assert fired(engine, answer("AAA", None)) == []
    assert fired(engine, answer("AAA", 0.02)) == []  # still disarmed: the null did not count as going false
    ranks = AlertEngine([sub({"kind": "top_n", "n": 1})])
    ranks.evaluate([answer("AAA", 0.05), answer("BBB", 0.01)])
    assert fired(ranks, answer("AAA", None)) == []  # AAA's 0.05 still ranks first


def test_interval_excludes_zero_says_which_side_and_a_jump_across_zero_is_a_new_crossing():
    engine = AlertEngine([sub({"kind": "interval_excludes_zero"})])
    assert fired(engine, answer("AAA", 0.01, -0.01, 0.03), answer("BBB", 0.0, 0.0, 0.02)) == []  # low 0 is not > 0
    alerts = engine.evaluate([answer("AAA", 0.02, 0.005, 0.04), answer("BBB", -0.02, -0.04, -0.001)])
    assert [(a["ticker"], a["rule"], a["value"], a["threshold"]) for a in alerts] == [
        ("AAA", "interval_excludes_zero", 0.005, 0.0),
        ("BBB", "interval_excludes_zero", -0.001, 0.0),
    ]
    assert "lies above zero" in alerts[0]["message"] and "lies below zero" in alerts[1]["message"]
    assert fired(engine, answer("AAA", 0.03, 0.01, 0.05)) == []  # staying above
    below = engine.evaluate([answer("AAA", -0.03, -0.05, -0.01)])  # straight to the other side
    assert [(a["ticker"], "lies below zero" in a["message"]) for a in below] == [("AAA", True)]


def test_change_measures_from_the_first_value_then_from_the_last_alert():
    engine = AlertEngine([sub({"kind": "change", "threshold": 0.01})])
    assert fired(engine, answer("AAA", 0.02)) == []  # the first value seen: the reference
    assert fired(engine, answer("AAA", 0.025)) == []
    assert fired(engine, answer("AAA", 0.015)) == []
    alerts = engine.evaluate([answer("AAA", 0.03)])  # 0.03 - 0.02 = 0.01 (up to rounding): reaches it
    assert [(a["rule"], a["value"], a["threshold"]) for a in alerts] == [("change 0.01", 0.03, 0.01)]
    assert alerts[0]["message"] == "AAA: prediction moved +0.01 to 0.03 (from 0.02)"
    assert fired(engine, answer("AAA", 0.025)) == []  # now measured from 0.03
    assert fired(engine, answer("AAA", 0.019)) == [("alice", "change 0.01", "AAA")]


def test_top_n_alerts_on_entering_not_while_staying_including_tickers_outside_the_batch():
    engine = AlertEngine([sub({"kind": "top_n", "n": 2}, {"kind": "bottom_n", "n": 1})])
    first = engine.evaluate([answer(t, p) for t, p in [("AAA", 0.05), ("BBB", 0.04), ("CCC", 0.01), ("DDD", -0.02)]])
    assert [(a["rule"], a["ticker"], a["value"], a["threshold"]) for a in first] == [
        ("top_n 2", "AAA", 0.05, 2),  # by rank
        ("top_n 2", "BBB", 0.04, 2),
        ("bottom_n 1", "DDD", -0.02, 1),
    ]
    assert first[0]["message"] == "AAA entered the top 2 by prediction (rank 1 of 4, prediction 0.05)"
    assert fired(engine, answer("AAA", 0.06), answer("BBB", 0.045)) == []  # staying in
    assert fired(engine, answer("CCC", 0.07)) == [("alice", "top_n 2", "CCC")]  # enters: BBB leaves
    # CCC drops out: BBB, not in the batch, enters again (it had left, so it was re-armed)
    alerts = engine.evaluate([answer("CCC", 0.0, t="2024-03-01T15:31:00Z")])
    assert [(a["ticker"], a["as_of"]) for a in alerts] == [("BBB", T)]  # BBB's own answer's time


def test_ranks_are_over_all_tickers_even_for_a_subscriber_following_a_few():
    engine = AlertEngine([sub({"kind": "top_n", "n": 1}, tickers=["BBB"])])
    assert fired(engine, answer("AAA", 0.05), answer("BBB", 0.04)) == []  # BBB is second overall
    assert fired(engine, answer("AAA", 0.0)) == [("alice", "top_n 1", "BBB")]


def test_each_subscriber_sees_only_its_tickers_and_its_own_state():
    engine = AlertEngine(
        [
            sub({"kind": "above", "threshold": 0.02}, subscriber="alice", tickers=["AAA"]),
            sub({"kind": "above", "threshold": 0.02}, subscriber="bob"),
        ]
    )
    assert fired(engine, answer("AAA", 0.03), answer("BBB", 0.03)) == [
        ("alice", "above 0.02", "AAA"),
        ("bob", "above 0.02", "AAA"),
        ("bob", "above 0.02", "BBB"),
    ]
    assert fired(engine, answer("ZZZ", 0.03)) == [("bob", "above 0.02", "ZZZ")]  # a ticker first seen later


def test_the_last_answer_of_a_ticker_in_a_batch_wins_and_bytes_are_accepted():
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.02})])
    assert fired(engine, answer("AAA", 0.03), answer("AAA", 0.01)) == []
    assert [a["ticker"] for a in engine.evaluate([json.dumps(answer("AAA", 0.03)).encode()])] == ["AAA"]


# --- cool-down ---


def test_a_flapping_value_alerts_once_per_cooldown():
    clock = Clock()
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.02}, cooldown_s=900)], clock=clock)
    counts = []
    for step in range(20):  # every 30 s across the threshold and back: 600 s
        clock.now += 30
        counts.append(len(engine.evaluate([answer("AAA", 0.03 if step % 2 == 0 else 0.01)])))
    assert counts == [1] + [0] * 19
    clock.now += 330  # 900 s after the alert (at the first step)
    assert fired(engine, answer("AAA", 0.01)) == []
    assert fired(engine, answer("AAA", 0.03)) == [("alice", "above 0.02", "AAA")]
    assert fired(engine, answer("AAA", 0.01), answer("AAA", 0.03)) == []  # (last wins: still above)
    clock.now += 60
    assert fired(engine, answer("AAA", 0.01)) == [] and fired(engine, answer("AAA", 0.03)) == []


def test_a_crossing_within_the_cooldown_alerts_once_the_cooldown_is_over_if_the_condition_holds():
    clock = Clock()
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.02}, cooldown_s=900)], clock=clock)
    assert len(engine.evaluate([answer("AAA", 0.03)])) == 1
    clock.now += 10
    engine.evaluate([answer("AAA", 0.0)])
    clock.now += 10
    assert engine.evaluate([answer("AAA", 0.03)]) == []  # crossed again within the cool-down
    clock.now += 880
    assert fired(engine, answer("AAA", 0.04)) == [("alice", "above 0.02", "AAA")]  # still above, cool-down over


def test_cooldown_is_per_rule_and_ticker():
    clock = Clock()
    engine = AlertEngine(
        [sub({"kind": "above", "threshold": 0.02}, {"kind": "change", "threshold": 0.01}, cooldown_s=900)],
        clock=clock,
    )
    engine.evaluate([answer("AAA", 0.0), answer("BBB", 0.0)])
    clock.now += 1
    assert fired(engine, answer("AAA", 0.03)) == [("alice", "above 0.02", "AAA"), ("alice", "change 0.01", "AAA")]
    clock.now += 1
    assert fired(engine, answer("BBB", 0.03)) == [("alice", "above 0.02", "BBB"), ("alice", "change 0.01", "BBB")]
    clock.now += 1
    assert fired(engine, answer("AAA", 0.05)) == []  # change within AAA's cool-down


# --- validation ---


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"kind": "crossover", "threshold": 1}, "subscriber 'alice': rules[1] (crossover), kind: Input should be"),
        ({"kind": "above"}, "subscriber 'alice': rules[1] (above), above needs a threshold"),
        ({"kind": "top_n", "n": 0}, "subscriber 'alice': rules[1] (top_n), top_n needs n >= 1, got 0"),
        ({"kind": "bottom_n"}, "rules[1] (bottom_n), bottom_n needs n"),
        ({"kind": "change", "threshold": 0}, "rules[1] (change), change needs a threshold > 0"),
        ({"kind": "interval_excludes_zero", "threshold": 0.1}, "rules[1] (interval_excludes_zero), interval_excludes"),
        ({"kind": "above", "threshold": "high"}, "rules[1] (above), threshold: Input should be a valid number"),
        ({"kind": "above", "threshold": 0.1, "nn": 3}, "rules[1] (above), nn: Extra inputs are not permitted"),
        ({"threshold": 0.1}, "rules[1], kind is missing"),
        ({"kind": "above", "threshold": 0.02}, "the same rule twice: above 0.02"),
    ],
)
def test_validation_errors_name_the_subscriber_and_the_rule(rule, expected):
    with pytest.raises(SubscriptionError) as raised:
        parse_subscription({"subscriber": "alice", "rules": [{"kind": "above", "threshold": 0.02}, rule]})
    assert expected in str(raised.value), str(raised.value)


def test_subscription_level_errors():
    with pytest.raises(SubscriptionError, match="subscriber 'bob': rules: no rules"):
        parse_subscription({"subscriber": "bob", "rules": []})
    with pytest.raises(SubscriptionError, match="subscriber 'bob': tickers: tickers is empty"):
        parse_subscription({"subscriber": "bob", "tickers": [], "rules": [{"kind": "top_n", "n": 3}]})
    with pytest.raises(SubscriptionError, match="subscriber 'bob': cooldown_s: Input should be greater than"):
        parse_subscription({"subscriber": "bob", "cooldown_s": -1, "rules": [{"kind": "top_n", "n": 3}]})
    with pytest.raises(SubscriptionError, match="a subscription: subscriber is missing"):
        parse_subscription({"rules": [{"kind": "top_n", "n": 3}]})


def test_a_file_in_yaml_or_json(tmp_path):
    (tmp_path / "alerts.yaml").write_text(
        """
subscriptions:
  - subscriber: desk-a
    tickers: [AAPL, MSFT]
    cooldown_s: 600
    rules:
      - {kind: above, threshold: 0.02}
      - {kind: interval_excludes_zero}
      - {kind: top_n, n: 10}
      - {kind: change, threshold: 0.01}
  - subscriber: desk-b
    rules:
      - kind: bottom_n
        n: 5
"""
    )
    a, b = load_subscriptions(tmp_path / "alerts.yaml")
    assert (a.subscriber, a.tickers, a.cooldown_s) == ("desk-a", ("AAPL", "MSFT"), 600)
    assert [r.name for r in a.rules] == ["above 0.02", "interval_excludes_zero", "top_n 10", "change 0.01"]
    assert (b.tickers, b.cooldown_s, [r.name for r in b.rules]) == (None, 900, ["bottom_n 5"])
    (tmp_path / "alerts.json").write_text(json.dumps({"subscriptions": [a.model_dump(), b.model_dump()]}))
    assert load_subscriptions(tmp_path / "alerts.json") == [a, b]


def test_a_file_reports_every_problem_at_once(tmp_path):
    path = tmp_path / "alerts.json"
    path.write_text(
        json.dumps(
            [
                {"subscriber": "a", "rules": [{"kind": "above"}]},
                {"subscriber": "b", "rules": [{"kind": "top_n", "n": 3}]},
                {"subscriber": "b", "rules": [{"kind": "top_n", "n": 4}]},
                {"rules": [{"kind": "nope"}]},
            ]
        )
    )
    with pytest.raises(SubscriptionError) as raised:
        load_subscriptions(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    assert "subscriber 'a': rules[0] (above), above needs a threshold" in message
    assert "subscriber 'b': subscribed twice" in message
    assert "[3] a subscription: subscriber is missing" in message and "rules[0] (nope), kind:" in message
    path.write_text("{not json")
    with pytest.raises(SubscriptionError, match="not valid JSON"):
        load_subscriptions(path)
    (tmp_path / "alerts.yml").write_text("subscriptions: [a, b")
    with pytest.raises(SubscriptionError, match="not valid YAML"):
        load_subscriptions(tmp_path / "alerts.yml")
    with pytest.raises(SubscriptionError, match="expected a list"):
        parse_subscriptions({"subs": []})


# --- subscriptions in Redis ---


def test_redis_subscriptions_reload_on_a_version_change_or_every_refresh_and_skip_bad_entries(client, prefix, caplog):
    key = f"{prefix}:alerts:subscriptions"
    clock = Clock(0.0)
    source = RedisSubscriptions(client, key=key, check_s=1.0, refresh_s=60.0, clock=clock)
    assert source.poll() == []  # the first call reads, even an empty hash
    put_subscription(client, sub({"kind": "above", "threshold": 0.02}, subscriber="alice"), key=key)
    assert source.poll() is None  # the version is checked at most once a second
    clock.now += 1
    assert [s.subscriber for s in source.poll()] == ["alice"]
    clock.now += 1
    assert source.poll() is None  # no change
    client.hset(key, "broken", "{not json")
    client.hset(key, "bad-rule", json.dumps({"rules": [{"kind": "top_n", "n": 0}]}))
    client.hset(key, "carol", json.dumps({"rules": [{"kind": "below", "threshold": -0.02}], "cooldown_s": 60}))
    clock.now += 1
    assert source.poll() is None  # written without bumping the version: seen at the next refresh
    caplog.set_level(logging.WARNING, logger="stockpred.stream")
    clock.now += 60
    assert [s.subscriber for s in source.poll()] == ["alice", "carol"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'bad-rule'" in w and "rules[0] (top_n), top_n needs n >= 1" in w for w in warnings), warnings
    assert any("'broken'" in w for w in warnings), warnings
    delete_subscription(client, "alice", key=key)
    assert int(client.get(version_key(key))) == 2
    clock.now += 1
    assert [s.subscriber for s in source.poll()] == ["carol"]
    client.hset(key, "dave", json.dumps({"subscriber": "eve", "rules": [{"kind": "top_n", "n": 1}]}))
    assert [s.subscriber for s in read_subscriptions(client, key)] == ["carol"]  # names another subscriber


def test_new_subscriptions_keep_the_state_of_the_rules_they_keep():
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.02})])
    assert len(engine.evaluate([answer("AAA", 0.03)])) == 1
    engine.set_subscriptions(
        [sub({"kind": "above", "threshold": 0.02}, {"kind": "below", "threshold": 0.05}, tickers=["AAA", "BBB"])]
    )
    assert fired(engine, answer("AAA", 0.04), answer("BBB", 0.03)) == [
        ("alice", "above 0.02", "BBB"),  # AAA stays above: no new alert
        ("alice", "below 0.05", "AAA"),  # a new rule starts armed
        ("alice", "below 0.05", "BBB"),
    ]
    with pytest.raises(SubscriptionError, match="subscribed twice"):
        engine.set_subscriptions([sub({"kind": "top_n", "n": 1}), sub({"kind": "top_n", "n": 2})])


# --- state in Redis ---


def test_the_state_survives_a_new_engine_built_from_redis(client, prefix):
    clock = Clock()
    subscriptions = [
        sub(
            {"kind": "above", "threshold": 0.02},
            {"kind": "change", "threshold": 0.01},
            {"kind": "top_n", "n": 2},
            {"kind": "interval_excludes_zero"},
            cooldown_s=900,
        )
    ]
    state_key = f"{prefix}:alerts:state"
    engine = AlertEngine(subscriptions, clock=clock, state_key=state_key)
    batch = [answer(t, p) for t, p in [("AAA", 0.03), ("BBB", 0.01), ("CCC", 0.07), ("DDD", -0.01)]]
    before = fired(engine, *batch)
    assert ("alice", "above 0.02", "AAA") in before and ("alice", "top_n 2", "CCC") in before
    clock.now += 10
    assert fired(engine, answer("AAA", 0.0)) == [  # AAA re-armed (above, top_n), within its cool-down
        ("alice", "change 0.01", "AAA"),  # from 0.03
        ("alice", "top_n 2", "BBB"),
    ]
    pipe = client.pipeline()
    assert engine.state_writes(pipe) > 0
    pipe.execute()
    assert engine.state_writes(client.pipeline()) == 0  # nothing changed since

    restarted = AlertEngine(subscriptions, clock=clock, state_key=state_key)
    restarted.load_state(client)
    clock.now += 10
    # the top 2 is over the whole universe loaded back, not just this batch: DDD is 4th, not 1st of 1
    assert fired(restarted, answer("DDD", -0.01)) == []
    # CCC stays above 0.02, in the top 2 and above zero (all disarmed); AAA crosses again but cools down; BBB's
    # change is measured from its first value 0.01
    assert fired(restarted, answer("CCC", 0.07), answer("AAA", 0.03), answer("BBB", 0.005)) == []
    clock.now += 900
    assert fired(restarted, answer("AAA", 0.031)) == [
        ("alice", "above 0.02", "AAA"),
        ("alice", "change 0.01", "AAA"),  # from 0.0, its last alert
        ("alice", "top_n 2", "AAA"),  # entered within the cool-down, still in
    ]

    # a fresh engine without the state would alert everything again
    assert len(AlertEngine(subscriptions, clock=clock).evaluate(batch)) > 0


def test_a_full_write_rewrites_everything_and_a_bad_state_field_is_skipped(client, prefix, caplog):
    state_key = f"{prefix}:alerts:state"
    subscriptions = [sub({"kind": "above", "threshold": 0.02})]
    engine = AlertEngine(subscriptions, state_key=state_key)
    engine.evaluate([answer("AAA", 0.03), answer("BBB", 0.0)])
    engine.state_writes(client.pipeline())  # a pipeline that is never executed: lost
    assert client.exists(state_key) == 0
    pipe = client.pipeline()
    assert engine.state_writes(pipe, full=True) == 3  # AAA's rule state, the latest of AAA and BBB
    pipe.execute()
    stored = {tuple(json.loads(k)): json.loads(v) for k, v in client.hgetall(state_key).items()}
    assert list(stored) == [("alice", "above 0.02", "AAA")]
    armed, last, ref = stored["alice", "above 0.02", "AAA"]
    assert (armed, ref) == (False, None) and abs(last - time.time()) < 60
    latest = {k.decode(): json.loads(v) for k, v in client.hgetall(f"{state_key}:latest").items()}
    assert latest == {"AAA": [0.03, T, "7"], "BBB": [0.0, T, "7"]}
    client.hset(state_key, "garbage", "1")
    client.hset(state_key, json.dumps(["gone", "above 1", "AAA"]), json.dumps([False, 1.0, None]))  # unsubscribed
    caplog.set_level(logging.WARNING, logger="stockpred.stream")
    restarted = AlertEngine(subscriptions, state_key=state_key)
    restarted.load_state(client)
    assert any("garbage" in r.getMessage() for r in caplog.records)
    assert fired(restarted, answer("AAA", 0.04)) == []


# --- the events stream ---


def test_alerts_land_in_the_events_and_alerts_streams_with_the_documented_fields(client, prefix):
    subscriber = f"{prefix}-desk"
    engine = AlertEngine([sub({"kind": "above", "threshold": 0.02}, subscriber=subscriber)])
    alerts = engine.evaluate([answer("AAA", 0.03), answer("BBB", 0.05)])
    pipe = client.pipeline()
    assert publish_alerts(pipe, alerts) == 2
    pipe.execute()
    ours, alone = [], []
    for _, fields in client.xrange(EVENTS_KEY):  # the stream is shared by the session: keep this test's entries
        kind, tickers, data = parse_event(fields)
        if kind == ALERT and data["subscriber"] == subscriber:
            ours.append((tickers, data))
    for _, fields in client.xrange(ALERTS_KEY):
        kind, tickers, data = parse_event(fields)
        if data["subscriber"] == subscriber:
            alone.append((tickers, data))
    assert alone == ours
    assert [t for t, _ in ours] == [["AAA"], ["BBB"]]
    assert ours[0][1] == {
        "subscriber": subscriber,
        "rule": "above 0.02",
        "ticker": "AAA",
        "value": 0.03,
        "threshold": 0.02,
        "message": "AAA: prediction 0.03 rose above 0.02",
        "as_of": T,
        "model_version": "7",
    }
