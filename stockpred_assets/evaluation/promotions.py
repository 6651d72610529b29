"""The registry's side of evaluation: which versions were champion and from when, and which model run receives a
week's backtest."""

from stockpred_assets.evaluation.scoring import Promotion
from stockpred_assets.training.assets import week_versions
from stockpred_core.io.model_card import CHALLENGER_ALIAS, CHAMPION_FROM_TAG, ModelCard, card_of, read_model_card
from stockpred_resources.tracking import MLflowResource


def promoted_versions(mlflow_resource: MLflowResource) -> dict[str, tuple[Promotion, ModelCard]]:
    """Every registry version that was champion, by version number: its promotion week and training cut-off."""
    client, name = mlflow_resource.client(), mlflow_resource.registered_model
    found = {}
    for version in client.search_model_versions(f"name = '{name}'"):
        if CHAMPION_FROM_TAG not in version.tags:
            continue
        card = card_of(client, version)
        if card.champion_from is not None and card.cutoff is not None:
            found[card.version] = (Promotion(card.version, card.champion_from, card.cutoff, card.family), card)
    return found


def backtest_run(mlflow_resource: MLflowResource, week: str, family: str) -> tuple[ModelCard | None, str]:
    """The model version whose MLflow run receives the week's backtest: the week's challenger when it is of the
    backtested family, else the week's newest version of that family; None when the week has neither."""
    challenger = read_model_card(mlflow_resource.client(), mlflow_resource.registered_model, CHALLENGER_ALIAS)
    if challenger is not None and challenger.week == week and challenger.family == family:
        return challenger, "challenger"
    card = week_versions(mlflow_resource, week).get(family)
    return (card, f"the week's {family} version") if card is not None else (None, "-")
