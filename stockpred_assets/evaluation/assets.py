"""Walk-forward backtest of the weekly model recipe, reported in Dagster and MLflow."""

import dagster as dg
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow

from stockpred_assets.core.backtest import evaluate, walk_forward_predictions
from stockpred_assets.core.splits import folds_from, gap_sessions, walk_forward_folds
from stockpred_assets.core.training import make_forecaster
from stockpred_assets.metadata import float_metadata, png_markdown
from stockpred_assets.partitions import week_start, weeks
from stockpred_assets.training.assets import HISTORY_MAPPING, TRAIN_WEEKS
from stockpred_assets.training.data import load_training_set
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.registry import PARTITION_TAG
from stockpred_resources.tracking import MLflowResource

HEADLINE = (
    "ic",
    "rank_ic",
    "rank_icir",
    "rank_ic_t",
    "icir",
    "hit_rate",
    "mse_vs_naive",
    "annual_return",
    "sharpe",
    "max_drawdown",
    "turnover",
    "buy_and_hold_annual_return",
)


class BacktestConfig(dg.Config):
    """A model family refit fold by fold with default parameters (the backtest does not tune)."""

    family: str = "lightgbm"  # lightgbm | torch_mlp | linear | momentum
    horizon: int = 5
    label: str = "return"  # the training target: "return" or "rank"; metrics are always against the return
    embargo: int = 0  # sessions left out on top of the horizon-long purge before each test block
    train_weeks: int = TRAIN_WEEKS
    seed: int = 0
    n_folds: int = 4
    min_train_sessions: int = 252
    oos_start: str | None = None  # when set, the test blocks tile the dates from here on instead
    num_boost_round: int = 60  # lightgbm
    epochs: int = 10  # torch_mlp
    cost_bps: float = 10.0


def _equity_figure(result):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=False)
    result.equity.plot(ax=top, title="Growth of 1 (long-short top/bottom 20%, after costs) vs equal-weight hold")
    result.daily_ic.rolling(20).mean().plot(ax=bottom, title="Rank IC, 20-day mean", color="tab:green")
    bottom.axhline(0.0, color="grey", linewidth=0.8)
    fig.tight_layout()
    return fig


@dg.asset(
    partitions_def=weeks,
    # Not downstream of lgbm_model: the backtest judges the training recipe and must run even when the promotion
    # gate blocks this week's model.
    deps=[
        dg.AssetDep("features", partition_mapping=HISTORY_MAPPING),
        dg.AssetDep("validated_bars", partition_mapping=HISTORY_MAPPING),
    ],
    kinds={"lightgbm", "mlflow", "matplotlib"},
)
def backtest_report(
    context: dg.AssetExecutionContext,
    config: BacktestConfig,
    lake: LakeResource,
    duckdb: DuckDBResource,
    mlflow_resource: MLflowResource,
) -> dg.MaterializeResult:
    """Out-of-sample walk-forward: expanding-window refits, purged by the horizon, scored on the following block."""
    data = load_training_set(lake, duckdb, week_start(context), config.train_weeks, config.horizon, config.label)
    X, y = data.X, data.y
    gap = gap_sessions(config.horizon, config.embargo)
    folds = (
        folds_from(X.index, config.oos_start, config.n_folds, purge=gap)
        if config.oos_start
        else walk_forward_folds(X.index, config.n_folds, config.min_train_sessions, purge=gap)
    )
    params = {
        "lightgbm": {"num_boost_round": config.num_boost_round},
        "torch_mlp": {"epochs": config.epochs, "patience": config.epochs},  # no validation split: fixed epochs
    }.get(config.family, {})
    pred = walk_forward_predictions(X, y, folds, lambda: make_forecaster(config.family, params, config.seed))
    result = evaluate(pred, data.returns, config.horizon, cost_bps=config.cost_bps)
    figure = _equity_figure(result)
    headline = {k: result.metrics[k] for k in HEADLINE}
    with mlflow_resource.start_run(
        f"backtest-{context.partition_key}", {PARTITION_TAG: context.partition_key, "kind": "backtest"}
    ) as run:
        mlflow.log_params({**config.model_dump(), "folds": len(folds)})
        mlflow.log_metrics(result.metrics)
        mlflow.log_figure(figure, "backtest.png")
    plt.close(figure)
    return dg.MaterializeResult(
        metadata={
            **float_metadata(headline),
            "oos_range": f"{folds[0].test_start:%Y-%m-%d}..{folds[-1].test_end:%Y-%m-%d}",
            "oos_predictions": int(result.metrics["n_predictions"]),
            "mlflow_run_id": run.info.run_id,
            "plot": png_markdown(figure),
        }
    )
