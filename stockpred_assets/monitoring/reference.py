"""The champion a drift report compares against, and its reference: fitted once per champion, cached in the lake.

The reference is the champion's training window as its MLflow run recorded it (the `train` segment's first date to
the `test` segment's last: every row the run fitted, early-stopped and tested on, all before its cut-off), re-read
from the lake's features, with the champion's own predictions on those rows. Its fixed bins, KS grid and ordinary
ranges are stored under `monitoring/reference_v<version>`, so a daily report reads a few kilobytes instead of two
years of features.
"""

from dataclasses import dataclass

import dagster as dg

from stockpred_assets.training.data import with_alternative
from stockpred_core.dataset.training_set import families_of, feature_matrix, model_columns
from stockpred_core.features.batch import FEATURE_COLUMNS
from stockpred_core.features.catalog import LIBRARY_COLUMNS, LIBRARY_SET
from stockpred_core.io.model_card import CHAMPION_ALIAS, ModelCard, ModelCardError, read_model_card
from stockpred_core.io.model_registry import load_version
from stockpred_core.monitoring.performance import Baseline
from stockpred_core.monitoring.reference import PREDICTION, DriftReference, build_reference
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.tracking import MLflowResource

LAYER = "monitoring"


@dataclass(frozen=True)
class ChampionFacts:
    card: ModelCard  # what the champion's version records, its training window among it
    baseline: Baseline  # its test-segment figures

    @property
    def reference_table(self) -> str:
        return f"reference_v{self.card.version}"


def champion_facts(mlflow_resource: MLflowResource) -> ChampionFacts | None:
    """The registry's champion and its test figures; None when there is no champion yet."""
    try:
        card = read_model_card(
            mlflow_resource.client(), mlflow_resource.registered_model, CHAMPION_ALIAS, require=("training_window",)
        )
    except ModelCardError as exc:  # the reference is fitted on the training window: without it there is none
        raise dg.Failure(str(exc)) from exc
    if card is None:
        return None
    baseline = Baseline(
        rank_ic=card.test_metric("rank_ic"),
        ic=card.test_metric("ic"),
        mse_vs_naive=card.test_metric("mse_vs_naive"),
        horizon=card.horizon,
        label=card.label,
    )
    return ChampionFacts(card, baseline)


def load_reference(
    lake: LakeResource,
    duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
    champion: ChampionFacts,
    window: int,
    log=None,
) -> DriftReference:
    """The champion's cached reference, fitted now when missing or measured for another window length."""
    card = champion.card
    try:
        cached = DriftReference.from_frame(lake.read_table(LAYER, champion.reference_table))
        if cached.window == window:
            return cached
    except FileNotFoundError:
        pass
    first, last = card.training_window
    features = duckdb.read_window(lake.lake(), "features", "features", first, last)
    if features.empty:
        raise dg.Failure(
            f"no features in champion v{card.version}'s training window {first:%Y-%m-%d}..{last:%Y-%m-%d}: "
            "materialize `features` for it (the reference is fitted from them once, then cached)"
        )
    families = families_of(card.feature_columns)  # a champion of the alternative set predicts with its columns too
    features = with_alternative(lake, duckdb, features, families)
    library = LIBRARY_COLUMNS if LIBRARY_SET.intersection(card.feature_columns or ()) else []  # a library champion
    X = feature_matrix(features, [*model_columns(families), *library])  # the rows a model sees (warm-up rows left out)
    mlflow_resource.setup()
    model = load_version(card.name, card)
    frame = X.assign(**{PREDICTION: model.predict(X).to_numpy()}).reset_index()
    reference = build_reference(frame, [*FEATURE_COLUMNS, PREDICTION], window)
    lake.write_table(LAYER, champion.reference_table, reference.to_frame())
    if log is not None:
        log.info(
            f"fitted the drift reference of champion v{card.version} on {reference.sessions} sessions "
            f"{reference.start:%Y-%m-%d}..{reference.end:%Y-%m-%d} ({len(frame)} rows)"
        )
    return reference
