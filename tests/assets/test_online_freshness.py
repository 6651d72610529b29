"""The online features follow the daily job, not only the champion: after a day's run with no promotion, the service
answers from that day's features and does not flag them stale."""

import json

import dagster as dg
import httpx
import pandas as pd
import pytest
from support.env import environment, local_env
from support.service import fit, register, serve

from stockpred_assets.definitions import build_definitions
from stockpred_core.data import calendar
from stockpred_core.data.simulation import simulated_tickers
from stockpred_core.io.lake import Lake
from stockpred_core.settings import load_settings

pytestmark = pytest.mark.slow

UNIVERSE = 5
HISTORY_WEEKDAYS = 60  # partitions of the first daily run: enough bars for most features


def last_closed_sessions(count: int) -> list[pd.Timestamp]:
    """The `count` latest sessions whose close has passed, counted as the service's staleness clock counts them."""
    now = pd.Timestamp.now(tz="America/New_York")
    today = now.tz_localize(None).normalize()
    days = calendar.sessions(today - pd.Timedelta(days=30), today)
    return [d for d in days if d < today or now.hour >= 16][-count:]


def test_a_daily_run_without_promotion_refreshes_what_the_service_answers(tmp_path, redis_url):
    from bento.security import hash_key, new_token

    yesterday, today = last_closed_sessions(2)
    token = new_token()
    (tmp_path / "api_keys.json").write_text(json.dumps([{"id": "reader", "role": "reader", "sha256": hash_key(token)}]))
    env = local_env(
        tmp_path / "data",
        STOCKPRED_UNIVERSE_SIZE=str(UNIVERSE),
        STOCKPRED_REDIS_URL=redis_url,
        STOCKPRED_API_KEYS_FILE=str(tmp_path / "api_keys.json"),
    )
    with environment(env):
        defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
        daily = defs.resolve_job_def("daily_data_job")
        first = pd.bdate_range(end=yesterday, periods=HISTORY_WEEKDAYS)[0]
        # a fresh deployment: the daily job runs before any champion exists, and must not fail for it
        backfill = daily.execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": f"{first:%Y-%m-%d}",
                "dagster/asset_partition_range_end": f"{yesterday:%Y-%m-%d}",
            },
        )
        assert backfill.success
        # the first champion is promoted, and the champion change refreshes what the service reads
        register(load_settings(), fit("lightgbm"))
        serving = defs.resolve_job_def("serving_job").execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey("online_features")]
        )
        assert serving.success
        # the next session: the daily schedule's run, and no training, so no promotion
        run = daily.execute_in_process(instance=instance, partition_key=f"{today:%Y-%m-%d}")
        assert run.success

    with serve(env, tmp_path / "bento.log") as base:
        answer = httpx.post(
            f"{base}/predict",
            json={"ticker": simulated_tickers(UNIVERSE)[0]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["feature_date"] == f"{today:%Y-%m-%d}"
    assert body["stale"] is False and body["stale_reason"] is None and body["feature_age_sessions"] == 0
    online = run.asset_materializations_for_node("online_features")
    assert online and online[-1].metadata["redis_vectors"].value == UNIVERSE
    lake = Lake(load_settings(env).lake_url).read_table("serving", "online_features")
    assert (lake["date"] == today).all() and len(lake) == UNIVERSE
