"""The dashboard's readers and page functions on the world, without a browser (Dash callbacks are plain Python)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import redis

from dashboard.data import REPORTS, Data, Sources, confidence
from dashboard.harness import publish_alert, publish_predictions
from dashboard.pages import alerts, signals
from stockpred_core.alerts import SubscriptionError, read_subscriptions
from stockpred_core.io import stream_events
from stockpred_core.io.lake import Lake


def test_signals_rank_the_latest_day_with_sector_and_interval(world):
    table = world.data().signals()
    assert len(table) == len(world.tickers)
    assert table["prediction"].is_monotonic_decreasing
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    from_lake = table[table["source"] == "lake"]  # the browser tests may have refreshed a few tickers intraday
    assert set(from_lake["date"]) == {f"{world.sessions[-1]:%Y-%m-%d}"} and len(from_lake) > len(table) - 20
    assert (table["interval_low"] <= table["prediction"]).all() and (
        table["prediction"] <= table["interval_high"]
    ).all()
    assert table["sector"].nunique() == 8


def test_filters_keep_what_they_say():
    table = pd.DataFrame(
        {"ticker": list("ABCD"), "sector": ["x", "x", "y", "y"], "prediction": [0.02, -0.01, 0.005, -0.03],
         "confidence": [1.0, 0.2, 0.6, 0.9], "source": "lake"}
    )  # fmt: skip
    assert signals.filtered(table, ["x"], 0, "all")["ticker"].tolist() == ["A", "B"]
    assert signals.filtered(table, None, 0.5, "short")["ticker"].tolist() == ["D"]
    assert signals.filtered(table, None, 0, "long")["ticker"].tolist() == ["A", "C"]


def test_confidence_is_distance_from_zero_in_half_widths():
    got = confidence(pd.Series([0.01, 0.03, 0.0]), pd.Series([0.0, 0.02, -0.01]), pd.Series([0.02, 0.04, 0.01]))
    assert got.tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert confidence(pd.Series([0.005]), pd.Series([-0.005]), pd.Series([0.015])).iloc[0] == pytest.approx(0.5)


def test_refreshed_answers_from_the_stream_replace_the_lake_rows(world):
    data = world.data()
    publish_predictions(data.sources.redis, ["T0007"], 50.0)  # above every other prediction of the world
    row = data.signals().iloc[0]
    assert (row["ticker"], row["prediction"], row["source"].startswith("live")) == ("T0007", 50.0, True)
    assert "rsi_14" in row["top_contributions"]


def test_ticker_history_has_indicators_and_realized_returns(world):
    data = world.data()
    prices = data.ticker_history("T0003")
    assert {"close", "sma_20", "sma_50", "bb_upper", "bb_lower"} <= set(prices.columns)
    assert prices["ticker"].eq("T0003").all() and len(prices) == 250  # the default look-back
    history = data.prediction_history("T0003")
    assert len(history) == 60 and history["realized"].iloc[:-1].notna().all()


def test_backtest_health_and_freshness(world):
    data = world.data()
    result = data.backtest()
    assert result["week"] and len(result["equity"]) > 200 and (result["drawdown"] <= 0).all()
    assert list(result["per_year"].columns) == ["year", "return", "ic", "rank_ic", "sessions"]
    assert data.drift()["psi"].is_monotonic_decreasing
    fresh = dict(zip(*data.freshness()[["source", "latest"]].T.to_numpy(), strict=True))
    assert fresh["evaluation/predictions"] == f"{world.sessions[-1]:%Y-%m-%d}"
    assert data.champion() is None and data.versions().empty  # no registry in this world: the page says so


def test_alert_feed_newest_first(world):
    data = world.data()
    entry = publish_alert(data.sources.redis, "T0042", "below -0.02")
    feed = data.alert_feed()
    # the feed reads the alerts stream, whose entry is XADDed beside the events one (the same millisecond or not)
    newest = data.sources.redis.xrevrange(stream_events.ALERTS_KEY, count=1)[0][0].decode()
    assert (feed["id"].iloc[0], feed["ticker"].iloc[0], feed["rule"].iloc[0]) == (newest, "T0042", "below -0.02")
    assert data.last_event_id() == entry


def test_the_subscription_form_creates_edits_and_deletes(world):
    data = world.data()
    client: redis.Redis = data.sources.redis
    made = alerts.from_form("desk-z", "aapl, msft", "above 0.02; top_n 5; interval_excludes_zero", 60)
    data.save_subscription(made)
    (saved,) = [s for s in read_subscriptions(client) if s.subscriber == "desk-z"]
    assert saved.tickers == ("AAPL", "MSFT") and saved.cooldown_s == 60
    assert alerts.rules_text(saved) == "above 0.02; top_n 5; interval_excludes_zero"
    edited = alerts.from_form("desk-z", "", "below -0.01", 60, existing=saved)
    data.save_subscription(edited)
    (saved,) = [s for s in read_subscriptions(client) if s.subscriber == "desk-z"]
    assert saved.tickers is None and alerts.rules_text(saved) == "below -0.01"
    data.delete_subscription("desk-z")
    assert "desk-z" not in {s.subscriber for s in read_subscriptions(client)}
    with pytest.raises(SubscriptionError, match="threshold"):
        alerts.from_form("desk-y", "", "above", 60)


def test_the_latest_backtest_is_the_latest_weeks_recipe_written_last(tmp_path):
    """Several recipes of one week sit side by side: the page shows the one written last, not the last by name."""
    lake = Lake(str(tmp_path / "lake"))
    data = Data(Sources(lake, None, None, "stockpred"))
    assert data.latest_backtest() is None
    base = tmp_path / "lake" / REPORTS / "backtest_report"
    base.mkdir(parents=True)
    names = ["2018-02-05_zero-return-h1", "2018-02-12_momentum-return-h1", "2018-02-12_linear-rank-h1"]
    for i, name in enumerate(names):
        path = base / f"{name}_predictions.parquet"
        path.write_bytes(b"")
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    (base / "2018-02-12_momentum-return-h1.html").write_text("report")
    assert data.latest_backtest() == "2018-02-12_linear-rank-h1"
    os.utime(base / "2018-02-12_momentum-return-h1_predictions.parquet", (1_800_000_000, 1_800_000_000))
    assert data.latest_backtest() == "2018-02-12_momentum-return-h1"
