"""The registry's side of evaluation: which versions were champion and from when, and which model run receives a
week's backtest."""

import pandas as pd

from stockpred_assets.evaluation.scoring import Promotion
from stockpred_assets.training.assets import CHAMPION_FROM_TAG, week_versions
from stockpred_assets.training.recording import FAMILY_TAG
from stockpred_core.io.model_registry import CHALLENGER_ALIAS, PARTITION_TAG, alias_version
from stockpred_resources.tracking import MLflowResource


def promoted_versions(mlflow_resource: MLflowResource) -> dict[str, tuple[Promotion, object]]:
    """Every registry version that was champion, by version number: its promotion week and training cut-off."""
    client, name = mlflow_resource.client(), mlflow_resource.registered_model
    found = {}
    for version in client.search_model_versions(f"name = '{name}'"):
        week, cutoff = version.tags.get(CHAMPION_FROM_TAG), version.tags.get(PARTITION_TAG)
        if week and cutoff:
            promotion = Promotion(
                str(version.version), pd.Timestamp(week), pd.Timestamp(cutoff), version.tags.get(FAMILY_TAG, "-")
            )
            found[promotion.version] = (promotion, version)
    return found


def backtest_run(mlflow_resource: MLflowResource, week: str, family: str):
    """The model version whose MLflow run receives the week's backtest: the week's challenger when it is of the
    backtested family, else the week's newest version of that family; None when the week has neither."""
    challenger = alias_version(mlflow_resource.client(), mlflow_resource.registered_model, CHALLENGER_ALIAS)
    if challenger is not None and challenger.tags.get(PARTITION_TAG) == week:
        if challenger.tags.get(FAMILY_TAG) == family:
            return challenger, "challenger"
    version = week_versions(mlflow_resource, week).get(family)
    return (version, f"the week's {family} version") if version is not None else (None, "-")
