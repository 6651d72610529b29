"""The scale-out path's configuration: backfills of the trading-day assets split into runs of a configured number of
partitions (each a Kubernetes Job under the run launcher), the weekly models left as they are."""

import dagster as dg
import pytest
from support.env import environment, local_env

from stockpred_assets.definitions import build_definitions
from stockpred_assets.partitions import trading_days

DAILY = ["raw_bars_simulated", "validated_bars", "features", "predictions", "drift_report"]


@pytest.mark.parametrize("per_run", [None, 120])
def test_backfills_split_into_runs_of_the_configured_number_of_partitions(tmp_path, per_run):
    extra = {} if per_run is None else {"STOCKPRED_BACKFILL_PARTITIONS_PER_RUN": str(per_run)}
    with environment(local_env(tmp_path, **extra)):
        defs = build_definitions()
    expected = dg.BackfillPolicy.single_run() if per_run is None else dg.BackfillPolicy.multi_run(per_run)
    for key in DAILY:
        assert defs.resolve_assets_def(key).backfill_policy == expected, key
    weekly = [a for a in defs.resolve_all_asset_specs() if a.partitions_def not in (None, trading_days)]
    assert weekly  # the training assets: one model per week, never split
    for spec in weekly:
        policy = defs.resolve_assets_def(spec.key).backfill_policy
        assert policy is None or policy.max_partitions_per_run != per_run or per_run is None


def test_a_backfill_size_below_one_is_refused(tmp_path):
    with environment(local_env(tmp_path, STOCKPRED_BACKFILL_PARTITIONS_PER_RUN="0")), pytest.raises(Exception) as err:
        build_definitions()
    assert "BACKFILL_PARTITIONS_PER_RUN" in str(err.value).upper() or "greater than or equal to 1" in str(err.value)
