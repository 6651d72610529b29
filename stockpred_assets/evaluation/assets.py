"""Out-of-sample evaluation: the daily predictions of the model in force, the weekly walk-forward backtest of the
training recipe and the rolling report over every prediction made so far; reported in Dagster and MLflow."""

import collections

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_assets.evaluation.promotions import backtest_run, promoted_versions
from stockpred_assets.evaluation.reporting import (
    HEADLINE,
    INDEX_HEADLINE,
    PortfolioConfig,
    daily_returns,
    evaluate,
    log_report,
    report_metadata,
    write_html,
    write_predictions,
)
from stockpred_assets.evaluation.scoring import empty_predictions, models_in_force, score
from stockpred_assets.metadata import frame_table, table_metadata
from stockpred_assets.partitions import partition_days, trading_days, week_start, weeks
from stockpred_assets.training.assets import HISTORY_MAPPING, MODEL_ASSETS, TRAIN_WEEKS
from stockpred_assets.training.data import alternative_only, load_training_set, recipe_families
from stockpred_core.dataset.labels import DEFAULT_HORIZON, DEFAULT_LABEL
from stockpred_core.dataset.splits import folds_from, gap_sessions, walk_forward_folds
from stockpred_core.dataset.training_set import (
    ALT_TABLE,
    ALT_VERSION_COLUMN,
    feature_matrix,
    join_alternative,
    split_version,
    stored_inputs,
)
from stockpred_core.evaluation.backtest import UpdateSchedule, walk_forward_predictions
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, TECHNICAL, feature_set_version
from stockpred_core.io.model_card import PARTITION_TAG
from stockpred_core.io.model_registry import load_version
from stockpred_core.models.ensemble import default_members
from stockpred_core.models.training import make_forecaster
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.tracking import MLflowResource

__all__ = ["HEADLINE", "INDEX_HEADLINE", "backtest_history", "backtest_report", "predictions"]

NO_MODEL = "no champion promoted for this week or before"


class BacktestConfig(PortfolioConfig):
    """A model family refit fold by fold with default parameters (the backtest does not tune)."""

    family: str = "lightgbm"  # lightgbm | torch_mlp | linear | momentum | ensemble | gru
    horizon: int = DEFAULT_HORIZON
    label: str = DEFAULT_LABEL  # the training target: "return" or "rank"; metrics are always against the return
    embargo: int = 0  # sessions left out on top of the horizon-long purge before each test block
    train_weeks: int = TRAIN_WEEKS
    seed: int = 0
    n_folds: int = 4
    min_train_sessions: int = 252
    oos_start: str | None = None  # when set, the test blocks tile the dates from here on instead
    oos_end: str | None = None  # when set, the test blocks end on this date (later rows are not read into the test)
    num_boost_round: int = 60  # lightgbm
    epochs: int = 10  # torch_mlp, gru (at most)
    ensemble_members: list[str] | None = None  # ensemble: its member families (unset: the ensemble's default)
    ensemble_seeds: int = 1  # ensemble: seeds per member family that takes one
    update_every: int = Field(
        0, description="lightgbm: > 0 updates each fold's model inside its test block every n sessions (1: daily)"
    )
    update_rounds: int = Field(10, description="boosting rounds each update adds")
    update_window: int = Field(20, description="sessions of the newest labelled rows each update trains on")
    feature_families: list[str] | None = Field(
        default=None,
        description='"technical" (always in) and any of "alpha158" (the Alpha158-like library of the feature table), '
        '"news", "social", "filings", "macro", and in backtests only "seq30" (the last 30 sessions\' price/volume '
        "path computed from the bars, what the gru family reads); unset: STOCKPRED_FEATURE_FAMILIES",
    )
    tickers: list[str] | None = Field(
        default=None, description="restrict the universe to these tickers (labels and benchmarks too); unset: all"
    )


# short names of the settings that change a backtest's figures, for its file name when they differ from the default
RECIPE_SETTINGS = {
    "top_k": "k", "n_drop": "drop", "buffer": "buf", "rebalance_every": "every", "max_turnover": "cap",
    "open_cost_bps": "open", "close_cost_bps": "close", "delay": "delay", "embargo": "embargo", "seed": "seed",
    "num_boost_round": "rounds", "epochs": "epochs", "ensemble_seeds": "seeds", "update_every": "update",
    "update_rounds": "urounds", "update_window": "uwindow",
}  # fmt: skip


def recipe_name(config: BacktestConfig, families: list[str]) -> str:
    """The backtest's file name after the week: family (an ensemble with its members), label, horizon, the
    alternative families, then every setting of RECIPE_SETTINGS off its default and a restricted universe, e.g.
    `lightgbm-return-h1`, `lightgbm-rank-h5-news+macro-every5` or `ensemble+lightgbm+linear-return-h1-tickers5`: two
    backtests of one week with different settings never share a file."""
    family = config.family
    if family == "ensemble":
        family = "+".join([family, *(config.ensemble_members or default_members())])
    parts = [family, config.label, f"h{config.horizon}", *(["+".join(families)] if families else [])]
    defaults = BacktestConfig()
    for name, short in RECIPE_SETTINGS.items():
        if name in ("update_rounds", "update_window") and config.update_every <= 0:
            continue  # they mean nothing without updates
        value = getattr(config, name)
        if value != getattr(defaults, name):
            parts.append(f"{short}{value:g}" if isinstance(value, float) else f"{short}{value}")
    if config.tickers is not None:
        parts.append(f"tickers{len(config.tickers)}")
    return "-".join(parts)


@dg.asset(
    partitions_def=weeks,
    # After the week's models are registered (so the backtest lands in their MLflow run), but not downstream of
    # challenger_model: the backtest judges the training recipe and must run even when the promotion gate blocks.
    deps=[
        dg.AssetDep("features", partition_mapping=HISTORY_MAPPING),
        dg.AssetDep("validated_bars", partition_mapping=HISTORY_MAPPING),
        *MODEL_ASSETS,
    ],
    kinds={"lightgbm", "mlflow", "matplotlib"},
)
def backtest_report(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    lake: LakeResource,
    duckdb: DuckDBResource,
    market_data: MarketDataResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:
    """Out-of-sample walk-forward: expanding-window refits, purged by the horizon, each scored on the following
    block; the signal, TopK-dropout / top-k / long-short books after costs against the index and the equal-weighted
    universe, per year; plots in the metadata, an HTML report in the lake, all of it in the model's MLflow run."""
    cutoff = week_start(context)
    families = recipe_families(config.feature_families, served=False)
    tickers = sorted({t.strip().upper() for t in config.tickers}) if config.tickers is not None else None
    data = load_training_set(lake, duckdb, cutoff, config.train_weeks, config.horizon, config.label, families, tickers)
    X, y = data.X, data.y
    if config.oos_end:
        kept = X.index.get_level_values("date") <= pd.Timestamp(config.oos_end)
        X, y = X[kept], y[kept]
    gap = gap_sessions(config.horizon, config.embargo)
    folds = (
        folds_from(X.index, config.oos_start, config.n_folds, purge=gap)
        if config.oos_start
        else walk_forward_folds(X.index, config.n_folds, config.min_train_sessions, purge=gap)
    )
    defaults = {
        "lightgbm": {"num_boost_round": config.num_boost_round},
        "torch_mlp": {"epochs": config.epochs, "patience": config.epochs},  # no validation split: fixed epochs
        "gru": {"epochs": config.epochs, "purge": gap},  # early-stopped on its newest training dates, purged
    }
    params = defaults.get(config.family, {})
    if config.family == "ensemble":  # its members fitted as they would be alone
        members = tuple(config.ensemble_members or default_members())
        params = {
            "members": members,
            "seeds": config.ensemble_seeds,
            "member_params": {k: v for k, v in defaults.items() if k in members},
        }
    update = None
    if config.update_every > 0:
        if config.family != "lightgbm":
            raise dg.Failure(f"update_every: only lightgbm updates incrementally, not {config.family}")
        try:
            update = UpdateSchedule(config.update_every, config.update_rounds, config.update_window, gap)
        except ValueError as exc:
            raise dg.Failure(f"update_every: {exc}") from exc
    try:
        make = lambda: make_forecaster(config.family, params, config.seed)  # noqa: E731
        pred = walk_forward_predictions(X, y, folds, make, update)
    except ValueError as exc:  # e.g. an alternative column without a value in a fold's training rows
        raise dg.Failure(f"the walk-forward of {config.family} cannot fit a fold: {exc}") from exc
    first = pred.index.get_level_values("date").min()
    returns = daily_returns(lake, duckdb, first - pd.Timedelta(days=10), cutoff - pd.Timedelta(days=1))
    if tickers is not None:  # the equal-weighted universe is the restricted one
        returns = returns[[t for t in returns.columns if t in set(tickers)]]
    title = f"Walk-forward backtest of {config.family} ({config.label} label), week {context.partition_key}"
    report = evaluate(pred, returns, config, market_data, config.horizon, title, label=data.returns)
    figures, page = report.figures(), report.to_html()
    # one file per recipe, so backtests of several families for the same week sit side by side
    recipe = recipe_name(config, families)
    name = f"backtest_report/{context.partition_key}_{recipe}"
    html = write_html(lake, name, page)
    predictions_file = write_predictions(lake, f"{name}_predictions", pred)  # to analyse them further
    card, role = backtest_run(mlflow_resource, context.partition_key, config.family)
    run = log_report(
        mlflow_resource, report, figures, page, "backtest",
        {**config.model_dump(), "feature_families": [TECHNICAL, *families], "folds": len(folds)},
        run_id=card.run_id if card is not None else None, run_name=f"backtest-{context.partition_key}",
        tags={PARTITION_TAG: context.partition_key, "kind": "backtest"},
    )  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "family": config.family,
            "recipe": recipe,
            "feature_set_version": feature_set_version(alternative_only(families)),
            "feature_families": dg.MetadataValue.json([TECHNICAL, *families]),
            "feature_columns": dg.MetadataValue.int(X.shape[1]),
            "tickers": dg.MetadataValue.int(int(X.index.get_level_values("ticker").nunique())),
            **report_metadata(report, figures, html, mlflow_resource, run, "backtest"),
            "folds": len(folds),
            "oos_predictions_file": predictions_file,
            "mlflow_logged_into": f"{role} v{card.version}" if card is not None else "its own run",
        }
    )


@dg.asset(
    partitions_def=trading_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # champion_model: the registry's promotions decide which model scores a day (the one in force that week)
    deps=["features", "champion_model"],
    output_required=False,  # nothing is materialized before the first champion exists (a fresh deployment)
    kinds={"mlflow", "parquet", "duckdb"},
)
def predictions(
    context: dg.AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource, mlflow_resource: MLflowResource
):
    """Each day's forecasts for every ticker with complete features, made by the champion in force that week: the
    version promoted for the day's week or, failing that, the latest week before (trained on data before its week's
    Monday, so it never saw the day it scores). Days before the first promotion are skipped and reported."""
    days = partition_days(context)
    promoted = promoted_versions(mlflow_resource)
    if not promoted:  # a fresh deployment: expected, and said in the metadata
        yield from _nothing_to_score(context, lake, days, mlflow_resource.registered_model)
        return
    chosen = models_in_force(days, [p for p, _ in promoted.values()])
    by_version = collections.defaultdict(list)
    for day, promotion in chosen.items():
        if promotion is not None:
            by_version[promotion.version].append(day)
    if not by_version:
        first = min(p.champion_from for p, _ in promoted.values())
        raise dg.Failure(
            f"no champion was in force on {days[0]:%Y-%m-%d}..{days[-1]:%Y-%m-%d}: the first was promoted for the "
            f"week of {first:%Y-%m-%d}, and a day is scored only by a model promoted for its week or before"
        )
    scored_days = sorted(d for vdays in by_version.values() for d in vdays)
    features = duckdb.read_window(lake.lake(), "features", "features", scored_days[0], scored_days[-1])
    if features.empty:
        raise dg.Failure(f"no features in {scored_days[0]:%Y-%m-%d}..{scored_days[-1]:%Y-%m-%d}: materialize them")
    X = feature_matrix(features, stored_inputs(features))
    row_dates = X.index.get_level_values("date")
    skipped = {f"{d:%Y-%m-%d}": NO_MODEL for d, p in chosen.items() if p is None}
    alt = AltWindow(lake, duckdb, scored_days[0], scored_days[-1])
    frames, used = [], []
    for number, vdays in by_version.items():
        promotion, card = promoted[number]
        trained_on = card.feature_set_version
        technical, alt_version = split_version(trained_on)
        other = set(features.loc[features["date"].isin(vdays), "feature_set_version"].dropna()) - {technical}
        if trained_on and other:  # a model scores only the feature set it was trained on
            skipped |= {f"{d:%Y-%m-%d}": f"features {sorted(other)}, v{number} wants {trained_on}" for d in vdays}
            continue
        if alt_version:  # trained on alternative columns too: the days' alt rows joined, days without any skipped
            gaps = alt.gaps(vdays, alt_version, number)
            skipped |= {f"{d:%Y-%m-%d}": reason for d, reason in gaps.items()}
            vdays = [d for d in vdays if d not in gaps]
            rows = alt.matrix(features[features["date"].isin(vdays)], alt_version)
        else:
            rows = X[row_dates.isin(vdays)]
        if not vdays:
            continue
        model = load_version(mlflow_resource.registered_model, card)
        frames.append(score(rows, model, promotion, card.horizon, card.label))
        used.append(
            {
                "model_version": number,
                "model_family": promotion.family,
                "champion_from": f"{promotion.champion_from:%Y-%m-%d}",
                "trained_before": f"{promotion.cutoff:%Y-%m-%d}",
                "days": f"{min(vdays):%Y-%m-%d}..{max(vdays):%Y-%m-%d}",
                "rows": len(rows),
            }
        )
    table = pd.concat([empty_predictions(), *frames], ignore_index=True).sort_values(["date", "ticker"])
    if table.empty and not used:
        raise dg.Failure(f"no day of the range could be scored: {sorted(set(skipped.values()))}")
    paths = lake.write_partitions("evaluation", "predictions", table, days)
    duckdb.register_view(lake.lake(), "evaluation", "predictions", view="predictions")
    in_range = features[features["date"].isin(scored_days)]
    yield dg.MaterializeResult(
        metadata={
            **table_metadata(table, paths),
            "days_scored": dg.MetadataValue.int(int(table["date"].nunique()) if len(table) else 0),
            "days_skipped": dg.MetadataValue.int(len(skipped)),
            "skipped": dg.MetadataValue.json(skipped),
            "unscored_rows": dg.MetadataValue.int(len(in_range) - len(table)),  # features still warming up
            "models": frame_table(pd.DataFrame(used)) if used else "-",
            "duckdb_view": "predictions",
        }
    )


class AltWindow:
    """The alt_features rows of the scored days, read once (the first time a model needs them)."""

    def __init__(self, lake: LakeResource, duckdb: DuckDBResource, start: pd.Timestamp, end: pd.Timestamp) -> None:
        self.lake, self.duckdb, self.start, self.end = lake, duckdb, start, end
        self._rows: pd.DataFrame | None = None

    @property
    def rows(self) -> pd.DataFrame:
        if self._rows is None:
            self._rows = self.duckdb.read_window(self.lake.lake(), *ALT_TABLE, self.start, self.end)
        return self._rows

    def gaps(self, days: list[pd.Timestamp], version: str, number: str) -> dict[pd.Timestamp, str]:
        """The days a model of alternative set `version` cannot score, with the reason."""
        rows = self.rows
        held = rows.groupby("date")[ALT_VERSION_COLUMN].agg(set).to_dict() if len(rows) else {}
        out = {}
        for day in days:
            if day not in held:
                out[day] = f"no alt_features rows for the day, v{number} was trained on them: materialize alt_features"
            elif held[day] != {version}:
                out[day] = f"alt_features {sorted(held[day])}, v{number} wants alternative set {version}"
        return out

    def matrix(self, features: pd.DataFrame, version: str) -> pd.DataFrame:
        """The model inputs of `features`' rows with the alternative columns joined."""
        if features.empty:
            return feature_matrix(features)
        joined = join_alternative(features, self.rows[self.rows["date"].isin(features["date"])], version)
        return feature_matrix(joined, [*stored_inputs(features), *ALT_COLUMNS])


def _nothing_to_score(context: dg.AssetExecutionContext, lake: LakeResource, days: list, model: str):
    """Before the first champion the days are written empty, with the reason, so the out-of-sample check and
    `backtest_history` run and say so; materializing the days again once a champion exists scores them."""
    context.log.info(f"{model} has no champion yet: the days are recorded as not scored")
    paths = lake.write_partitions("evaluation", "predictions", empty_predictions(), days)
    yield dg.MaterializeResult(
        metadata={
            **table_metadata(empty_predictions(), paths),
            "days_scored": dg.MetadataValue.int(0),
            "days_skipped": dg.MetadataValue.int(len(days)),
            "note": f"{model} has no champion yet: materialize weekly_training_job, then these days again",
        }
    )


class HistoryConfig(PortfolioConfig):
    min_dates: int = 2  # dates with a realized return needed before the report is drawn


@dg.asset(deps=["predictions"], output_required=False, kinds={"mlflow", "matplotlib", "html"})
def backtest_history(
    context: dg.AssetExecutionContext,
    config: HistoryConfig,
    lake: LakeResource,
    duckdb: DuckDBResource,
    market_data: MarketDataResource,
    mlflow_resource: MLflowResource,
):
    """The report over every prediction in the lake, i.e. what trading the champion in force each day would have
    earned: the signal, the books after costs against the benchmarks, per year; plots, HTML and an MLflow run."""
    store = lake.lake()
    dates = store.partition_dates("evaluation", "predictions")
    table = duckdb.read_window(store, "evaluation", "predictions", dates[0], dates[-1]) if dates else pd.DataFrame()
    sessions = store.partition_dates("validated", "bars")
    realized = sorted(set(table["date"])) if len(table) else []
    realized = [d for d in realized if sessions and d < sessions[-1]]
    if len(realized) < config.min_dates:  # a fresh deployment, or a champion newer than the last session
        context.log.info(
            f"{len(realized)} prediction date(s) have a realized next-session return, {config.min_dates} are "
            "needed: no report yet"
        )
        return
    horizons = table["horizon"].value_counts()
    horizon = int(horizons.index[0])  # the signal is scored against the horizon most predictions were made for
    pred = table.set_index(["date", "ticker"])["prediction"].sort_index()
    returns = daily_returns(lake, duckdb, realized[0] - pd.Timedelta(days=10), sessions[-1])
    title = f"Predictions of the champion in force, {realized[0]:%Y-%m-%d}..{realized[-1]:%Y-%m-%d}"
    report = evaluate(pred, returns, config, market_data, horizon, title)
    figures, page = report.figures(), report.to_html()
    html = write_html(lake, "backtest_history/report", page)
    run = log_report(
        mlflow_resource, report, figures, page, "backtest_history", config.model_dump(),
        run_name=f"backtest-history-{realized[-1]:%Y-%m-%d}", tags={"kind": "backtest_history"},
    )  # fmt: skip
    models = table.groupby(["model_version", "model_family"], as_index=False).agg(
        first=("date", "min"), last=("date", "max"), rows=("prediction", "size")
    )
    yield dg.MaterializeResult(
        metadata={
            **report_metadata(report, figures, html, mlflow_resource, run, "backtest_history"),
            "horizons": dg.MetadataValue.json({int(h): int(n) for h, n in horizons.items()}),
            "models": frame_table(models),
        }
    )
