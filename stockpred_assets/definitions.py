"""The stockpred code location: every group's assets, checks and automation, with resources for the environment."""

# ruff: noqa: E402 (the warning filters below must run before the imports that emit the warnings)

from __future__ import annotations

import warnings

import dagster as dg

# Dagster flags features this code location relies on, in the release pinned by the lock file, as beta
# (`backfill_policy`) or preview (partitioned asset checks, `Definitions.map_asset_specs`): a warning per use in every
# process that loads the definitions, about nothing a user can act on.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from stockpred_assets import intraday_reconciliation, intraday_stream
from stockpred_assets.alternative.graph import alternative_graph
from stockpred_assets.evaluation import assets as evaluation_assets
from stockpred_assets.evaluation import checks as evaluation_checks
from stockpred_assets.features import assets as features_assets
from stockpred_assets.ingestion import assets as ingestion_assets
from stockpred_assets.ingestion.automation import daily_data_job, daily_data_schedule, dead_letter_retry_sensor
from stockpred_assets.insights import assets as insights_assets
from stockpred_assets.monitoring import assets as monitoring_assets
from stockpred_assets.monitoring import checks as monitoring_checks
from stockpred_assets.monitoring.automation import automation_sensor, drift_retrain_sensor, run_failure_alert_sensor
from stockpred_assets.partitions import trading_days
from stockpred_assets.serving import assets as serving_assets
from stockpred_assets.serving.automation import champion_change_sensor, serving_job
from stockpred_assets.training import assets as training_assets
from stockpred_assets.training import checks as training_checks
from stockpred_assets.training.automation import weekly_training_job, weekly_training_schedule
from stockpred_assets.validation import assets as validation_assets
from stockpred_assets.validation import checks as validation_checks
from stockpred_core.models.families import TORCH_MISSING, torch_available
from stockpred_core.settings import load_settings
from stockpred_resources.environments import build_resources

OWNERS = ["team:quant-platform"]

GROUPS = {
    "ingestion": ingestion_assets,
    "validation": validation_assets,
    "features": features_assets,
    "training": training_assets,
    "evaluation": evaluation_assets,
    "serving": serving_assets,
    "monitoring": monitoring_assets,
    "insights": insights_assets,
    "intraday": intraday_reconciliation,  # with intraday_stream.intraday_bars, an AssetSpec (the stream writes it)
}


def _assets() -> list[dg.AssetsDefinition]:
    """Each group's assets with the group name and owners applied once, here; the MLP left out without PyTorch."""
    assets = [
        asset for group, module in GROUPS.items() for asset in dg.load_assets_from_modules([module], group_name=group)
    ]
    if torch_available():
        return assets
    dg.get_dagster_logger().warning(f"mlp_model is left out of the code location: {TORCH_MISSING}")
    return [asset for asset in assets if asset.key != dg.AssetKey("mlp_model")]


def split_backfills(assets: list[dg.AssetsDefinition], per_run: int | None) -> list[dg.AssetsDefinition]:
    """The trading-day assets' single-run backfills as runs of at most `per_run` partitions each (None: unchanged).
    Each run reads its own look-back and writes only its own partitions, so the runs do not contend."""
    if per_run is None:
        return assets
    policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=per_run)
    return [
        asset.with_attributes(backfill_policy=policy)
        if asset.partitions_def == trading_days and asset.backfill_policy == dg.BackfillPolicy.single_run()
        else asset
        for asset in assets
    ]


def build_definitions() -> dg.Definitions:
    settings = load_settings()
    alternative = alternative_graph(settings.alt_sources, settings.sentiment_sentences)  # empty unless configured
    defs = dg.Definitions(
        assets=[
            *split_backfills(_assets(), settings.backfill_partitions_per_run),
            intraday_stream.intraday_bars,
            *alternative.assets,
        ],
        asset_checks=[
            *dg.load_asset_checks_from_modules(
                [validation_checks, training_checks, evaluation_checks, monitoring_checks, intraday_stream]
            ),
            *alternative.checks,
        ],
        jobs=[daily_data_job(list(settings.providers)), weekly_training_job, serving_job, *alternative.jobs],
        schedules=[daily_data_schedule, weekly_training_schedule, *alternative.schedules],
        sensors=[
            champion_change_sensor,
            dead_letter_retry_sensor,
            drift_retrain_sensor,
            run_failure_alert_sensor,
            automation_sensor,
            intraday_stream.intraday_stream_sensor,
            *alternative.sensors,
        ],
        resources=build_resources(settings),
    )
    return defs.map_asset_specs(func=lambda spec: spec.replace_attributes(owners=OWNERS))


defs = build_definitions()
