"""`canary_live_ic` (issue 23): the served log's predictions of two variants, scored against the realized forward
returns of validated bars in a lake (a simulated market, splits and dividends adjusted), per feature date."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis

from stockpred_assets.monitoring.canary import TABLE, canary_live_ic
from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.data.simulation import simulate_market
from stockpred_core.dataset.labels import forward_returns
from stockpred_core.io.lake import Lake
from stockpred_core.io.served_log import SERVED_KEY, STATE_KEY, add_served
from stockpred_resources.lake import LakeResource
from stockpred_resources.redis import RedisResource

HORIZON = 5


@pytest.fixture
def served_world(tmp_path, redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/11"
    client = redis.Redis.from_url(url)
    client.delete(SERVED_KEY, STATE_KEY)
    client.hset(
        STATE_KEY, mapping={"percent": "10", "rolled_back": "9", "reason": "error rate 100.00%", "claimed:9": "1"}
    )
    lake = Lake(str(tmp_path / "lake"))
    bars, events = simulate_market(3, 40, "2024-01-02", "2024-03-28")
    days = calendar.sessions("2024-01-02", "2024-03-28")
    lake.write_partitions("validated", "bars", bars, days)
    lake.write_partitions("validated", "events", events, days)
    realized = forward_returns(adjust(bars, events), HORIZON)
    feature_dates = days[-15:]  # the last 5 have no realized return yet
    rng = np.random.default_rng(0)
    for date in feature_dates:
        tickers = sorted(bars.loc[bars["date"] == date, "ticker"])
        truth = realized.reindex(pd.MultiIndex.from_product([[date], tickers])).fillna(0.0).to_numpy()
        good = truth + rng.normal(0, 0.002, len(tickers))  # the canary ranks the names as they turn out
        bad = -truth  # the champion ranks them upside down
        day = f"{date:%Y-%m-%d}"
        add_served(client, {("canary", "8", day, HORIZON): list(zip(tickers, good, strict=True))})
        half = len(tickers) // 2  # one worker wrote half, another the rest and a duplicate
        add_served(
            client, {("champion", "7", day, HORIZON): list(zip(tickers[: half + 1], bad[: half + 1], strict=True))}
        )
        add_served(client, {("champion", "7", day, HORIZON): list(zip(tickers[half:], bad[half:], strict=True))})
    resources = {"lake": LakeResource(url=str(tmp_path / "lake")), "redis": RedisResource(url=url)}
    return resources, lake, feature_dates, client


def test_each_variant_gets_its_live_rank_ic_on_the_dates_with_returns(served_world):
    resources, lake, feature_dates, client = served_world
    result = dg.materialize([canary_live_ic], resources=resources)
    assert result.success
    metadata = result.asset_materializations_for_node("canary_live_ic")[0].metadata
    assert metadata["dates_with_returns"].value == 10 and metadata["feature_dates"].value == 15
    assert metadata["canary_v8_rank_ic"].value > 0.9 and metadata["champion_v7_rank_ic"].value < -0.99
    table = lake.read_table(*TABLE)
    assert set(table["date"]) == set(feature_dates[:10]) and (table["tickers"] == 40).all()
    assert "| canary" in metadata["variants"].value and "t_stat" in metadata["variants"].value
    assert metadata["rolled_back_version"].value == "9" and metadata["rollback_reason"].value.startswith("error rate")
    assert "claimed:9" not in metadata["canary_state"].value
    client.delete(SERVED_KEY)


def test_without_served_predictions_it_says_so(served_world):
    resources, _, _, client = served_world
    client.delete(SERVED_KEY)
    result = dg.materialize([canary_live_ic], resources=resources)
    metadata = result.asset_materializations_for_node("canary_live_ic")[0].metadata
    assert "no canary has served predictions yet" in metadata["status"].value
