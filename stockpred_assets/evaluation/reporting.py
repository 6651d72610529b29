"""The evaluation report in Dagster and MLflow, shared by `backtest_report` and `backtest_history`: the strategies,
daily returns from validated bars, headline metadata with the plots, the HTML file in the lake, the MLflow run.

The numbers come from `core.report.build_report`; this module only chooses its inputs and files its outputs.
"""

import io
import json

import dagster as dg
import mlflow
import pandas as pd
from pydantic import Field

from stockpred_assets.metadata import float_metadata, frame_table
from stockpred_core.data.adjustments import adjust
from stockpred_core.evaluation.report import EQUAL_WEIGHT, EvaluationReport, build_report
from stockpred_core.evaluation.returns import returns_from_bars
from stockpred_core.evaluation.strategies import Strategy
from stockpred_core.evaluation.tables import formatted
from stockpred_resources.lake import DuckDBResource, LakeResource
from stockpred_resources.market_data import MarketDataResource
from stockpred_resources.tracking import MLflowResource

INDEX = "index"  # the benchmark name of the configured market index (STOCKPRED_INDEX_FILE, e.g. ^GSPC)
REPORTS = "reports"  # lake folder of the HTML reports
SIGNAL_HEADLINE = ("ic", "icir", "ic_t", "rank_ic", "rank_icir", "rank_ic_t", "hit_rate", "mse_vs_naive")
# Always in the metadata: the signal, the primary book (TopK-dropout; net of costs unless `_gross`), its cost drag
# (mean daily cost x 252) and its beta, alpha (annualized) and alpha_t on the equal-weighted universe, the long-short
# spread and the equal-weighted universe. INDEX_HEADLINE is added when a market index file is configured: the primary
# book against the index, the primary book hedged to beta 0 with the index (`beta_neutral_`, net of the book's costs)
# and the long-short spread's alpha_t on the index.
HEADLINE = (
    *SIGNAL_HEADLINE,
    "annual_return",
    "annual_return_gross",
    "sharpe",
    "max_drawdown",
    "turnover",
    "cost_drag",
    "excess_return_equal_weight",
    "excess_return_equal_weight_gross",
    "information_ratio_equal_weight",
    "beta_equal_weight",
    "alpha_equal_weight",
    "alpha_t_equal_weight",
    "long_short_annual_return",
    "long_short_sharpe",
    "equal_weight_annual_return",
)
INDEX_HEADLINE = (
    "excess_return_index",
    "excess_return_index_gross",
    "information_ratio_index",
    "information_ratio_index_gross",
    "excess_max_drawdown_index",
    "index_annual_return",
    "beta_index",
    "alpha_index",
    "alpha_t_index",
    "beta_neutral_annual_return",
    "beta_neutral_sharpe",
    "beta_neutral_alpha_t_index",
    "long_short_alpha_t_index",
)


class PortfolioConfig(dg.Config):
    """How predictions become portfolios: Qlib's TopK-dropout, a top-k book and a long-short spread with a turnover
    cap, with `buffer` > 0 a buffered top-k book beside them, costs in basis points. k shrinks to a fifth of the
    universe when that is smaller (30 tickers: top 6), and n_drop and buffer with it."""

    top_k: int = Field(50, description="names held by the long books (each side of the long-short)")
    n_drop: int = Field(5, description="TopK-dropout: names swapped per day at most (scaled with k)")
    buffer: int = Field(0, description="> 0: also a top-k book keeping a held name while it ranks in the best k+buffer")
    rebalance_every: int = Field(1, description="every book trades on every n-th prediction date only (5: weekly)")
    max_turnover: float = Field(0.2, description="two-sided turnover cap a day of the top-k book (long-short: twice)")
    open_cost_bps: float = Field(5.0, description="cost on the value bought, in basis points")
    close_cost_bps: float = Field(15.0, description="cost on the value sold, in basis points")
    delay: int = Field(0, description="sessions between the prediction's close and the trade (1: Qlib's)")


def strategies(n_tickers: int, config: PortfolioConfig) -> tuple[Strategy, ...]:
    """TopK-dropout first (the headline), then top-k with the turnover cap, the buffered top-k (no cap: the buffer is
    its turnover control) when `buffer` > 0, and long-short with the cap."""
    k = max(1, min(config.top_k, n_tickers // 5))
    n_drop = min(k, max(1, round(config.n_drop * k / config.top_k))) if config.n_drop > 0 else 0
    buffer = max(1, round(config.buffer * k / config.top_k)) if config.buffer > 0 else 0
    common = {
        "open_cost_bps": config.open_cost_bps,
        "close_cost_bps": config.close_cost_bps,
        "delay": config.delay,
        "rebalance_every": config.rebalance_every,
    }
    cap = config.max_turnover if config.max_turnover > 0 else None
    buffered = (Strategy("topk", k=k, buffer=buffer, **common),) if buffer else ()
    return (
        Strategy("topk_dropout", k=k, n_drop=n_drop, **common),
        Strategy("topk", k=k, max_turnover=cap, **common),
        *buffered,
        # the long-short book holds 2 of gross exposure: the same pace of change is twice the turnover
        Strategy("long_short", k=k, max_turnover=2 * cap if cap else None, **common),
    )


def daily_returns(lake: LakeResource, duckdb: DuckDBResource, start, end) -> pd.DataFrame:
    """Close-to-close total returns (date x ticker) of the validated bars dated in [start, end], adjusted for the
    splits and dividends in the window (what the labels use)."""
    store = lake.lake()
    bars = duckdb.read_window(store, "validated", "bars", start, end)
    if bars.empty:
        raise dg.Failure(f"no validated bars in {start:%Y-%m-%d}..{end:%Y-%m-%d}: materialize validated_bars")
    events = duckdb.read_window(store, "validated", "events", start, end)
    return returns_from_bars(adjust(bars, events))


def evaluate(
    pred: pd.Series,
    returns: pd.DataFrame,
    config: PortfolioConfig,
    market_data: MarketDataResource,
    horizon: int,
    title: str,
    label: pd.Series | None = None,
) -> EvaluationReport:
    n_tickers = int(pred.index.get_level_values("ticker").nunique())
    try:
        return build_report(
            pred,
            returns,
            label=label,
            horizon=horizon,
            strategies=strategies(n_tickers, config),
            index_close=market_data.index_close(),
            index_name=INDEX,
            title=title,
        )
    except ValueError as exc:
        raise dg.Failure(f"cannot evaluate the predictions: {exc}") from exc


def headline(report: EvaluationReport) -> dict[str, float]:
    """The figures shown first: see HEADLINE."""
    summary, portfolios, primary = report.summary, report.portfolios, report.primary
    spread = next(name for name, p in portfolios.items() if p.strategy.kind == "long_short")
    net, gross = summary.loc[f"{primary} net"], summary.loc[f"{primary} gross"]
    out = {key: report.signal.metrics[key] for key in SIGNAL_HEADLINE}
    out |= {
        "annual_return": net["annual_return"],
        "annual_return_gross": gross["annual_return"],
        "sharpe": net["sharpe"],
        "max_drawdown": net["max_drawdown"],
        "turnover": net["turnover"],
        "cost_drag": net["cost_drag"],
        "excess_return_equal_weight": net[f"excess_{EQUAL_WEIGHT}"],
        "excess_return_equal_weight_gross": gross[f"excess_{EQUAL_WEIGHT}"],
        "information_ratio_equal_weight": net[f"ir_{EQUAL_WEIGHT}"],
        "beta_equal_weight": net[f"beta_{EQUAL_WEIGHT}"],
        "alpha_equal_weight": net[f"alpha_{EQUAL_WEIGHT}"],
        "alpha_t_equal_weight": net[f"alpha_t_{EQUAL_WEIGHT}"],
        "long_short_annual_return": summary.loc[f"{spread} net", "annual_return"],
        "long_short_sharpe": summary.loc[f"{spread} net", "sharpe"],
        "equal_weight_annual_return": summary.loc[EQUAL_WEIGHT, "annual_return"],
    }
    if INDEX in report.benchmarks.columns:
        hedged = summary.loc[report.beta_neutral_name]
        out |= {
            "excess_return_index": net[f"excess_{INDEX}"],
            "excess_return_index_gross": gross[f"excess_{INDEX}"],
            "information_ratio_index": net[f"ir_{INDEX}"],
            "information_ratio_index_gross": gross[f"ir_{INDEX}"],
            "excess_max_drawdown_index": net[f"excess_max_drawdown_{INDEX}"],
            "index_annual_return": summary.loc[INDEX, "annual_return"],
            "beta_index": net[f"beta_{INDEX}"],  # of the primary book, net of costs, on the index's daily returns
            "alpha_index": net[f"alpha_{INDEX}"],
            "alpha_t_index": net[f"alpha_t_{INDEX}"],
            "beta_neutral_annual_return": hedged["annual_return"],
            "beta_neutral_sharpe": hedged["sharpe"],
            "beta_neutral_alpha_t_index": hedged[f"alpha_t_{INDEX}"],
            "long_short_alpha_t_index": summary.loc[f"{spread} net", f"alpha_t_{INDEX}"],
        }
    return {k: float(v) for k, v in out.items()}


def strategy_table(report: EvaluationReport) -> dg.MetadataValue:
    rows = []
    for name, result in report.portfolios.items():
        s = result.strategy
        rows.append(
            {
                "strategy": name,
                "kind": s.kind,
                "k": s.k,
                "n_drop": s.n_drop if s.kind == "topk_dropout" else "-",
                "max_turnover": f"{s.max_turnover:.0%}" if s.max_turnover else "-",
                "buffer": s.buffer if s.kind == "topk" else "-",
                "rebalance_every": s.rebalance_every,
                "costs (bps open/close)": f"{s.open_cost_bps:g}/{s.close_cost_bps:g}",
                "delay": s.delay,
            }
        )
    return frame_table(pd.DataFrame(rows))


def write_report_file(lake: LakeResource, name: str, data: bytes) -> dg.MetadataValue:
    """A file at `<lake>/reports/<name>` (through fsspec: a local path or s3://...); its location as metadata."""
    store = lake.lake()
    path = f"{store.root}/{REPORTS}/{name}"
    store.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    store.fs.pipe_file(path, data)
    if store.fs.protocol in ("file", ("file", "local")):
        return dg.MetadataValue.path(path)
    return dg.MetadataValue.url(f"{store.url}/{REPORTS}/{name}")


def write_html(lake: LakeResource, name: str, page: str) -> dg.MetadataValue:
    """The report page at `<lake>/reports/<name>.html`."""
    return write_report_file(lake, f"{name}.html", page.encode("utf-8"))


def write_predictions(lake: LakeResource, name: str, pred: pd.Series) -> dg.MetadataValue:
    """Out-of-sample predictions as `<lake>/reports/<name>.parquet` (date, ticker, prediction)."""
    buffer = io.BytesIO()
    pred.rename("prediction").reset_index().to_parquet(buffer, index=False)
    return write_report_file(lake, f"{name}.parquet", buffer.getvalue())


def figure_path(prefix: str, name: str) -> str:
    """Where `log_report` puts a plot in the MLflow run."""
    return f"{prefix}/{name}.png"


def report_metadata(
    report: EvaluationReport, figures: dict, html_location: dg.MetadataValue, mlflow_resource: MLflowResource,
    run: mlflow.ActiveRun, prefix: str,
) -> dict:  # fmt: skip
    """The headline figures, the tables (each its own entry, drawn inline) and the plots that `log_report` logged to
    `run` (served by the MLflow UI), with the run's link."""
    primary = report.primary
    return {
        "report": f"{report.title} ({report.period}, horizon {report.horizon})",
        **float_metadata(headline(report)),
        "oos_range": report.period,
        "oos_predictions": int(report.signal.metrics["n_predictions"]),
        "primary_strategy": primary,  # what annual_return, sharpe, ... describe
        **({"notes": " ".join(report.notes)} if report.notes else {}),
        "strategies": strategy_table(report),
        "summary": frame_table(formatted(report.headline_summary()).rename_axis("book"), index=True),
        # a column per year: a few years stay narrow where a column per figure would not
        "per_year": frame_table(formatted(report.per_year[primary]).T.rename_axis(primary), index=True),
        "signal_per_year": frame_table(formatted(report.signal_per_year).T.rename_axis("signal"), index=True),
        **{
            f"plot_{name}": mlflow_resource.image(run.info.run_id, figure_path(prefix, name), name.replace("_", " "))
            for name in figures
        },
        "report_html": html_location,
        "mlflow_run_id": run.info.run_id,
        "mlflow_run": dg.MetadataValue.url(mlflow_resource.run_url(run.info.experiment_id, run.info.run_id)),
    }


def log_report(
    mlflow_resource: MLflowResource,
    report: EvaluationReport,
    figures: dict,
    page: str,
    prefix: str,
    config: dict,
    run_id: str | None = None,
    run_name: str = "backtest",
    tags: dict[str, str] | None = None,
):
    """Metrics (`<prefix>.<name>`), the plots, the HTML page, the config and the summary and per-year tables (CSV)
    into the MLflow run `run_id` (resumed: a model version's run) or a new run. Returns the run."""
    experiment_id = mlflow_resource.setup()
    tags = dict(tags or {})
    if run_id is not None:
        started = mlflow.start_run(run_id=run_id)
    else:
        started = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    with started as run:
        if run_id is not None:  # tags stay mutable on a finished run; its params would not be
            mlflow.set_tags({f"{prefix}.{k}": v for k, v in tags.items()})
        mlflow.log_metrics({f"{prefix}.{k}": v for k, v in report.metrics().items()})
        for name, figure in figures.items():
            mlflow.log_figure(figure, figure_path(prefix, name))
        mlflow.log_text(page, f"{prefix}/report.html")
        mlflow.log_text(json.dumps(config, indent=2, default=str), f"{prefix}/config.json")
        mlflow.log_text(report.summary.to_csv(), f"{prefix}/summary.csv")
        for name, table in report.per_year.items():
            mlflow.log_text(table.to_csv(), f"{prefix}/per_year/{name.replace(' ', '_')}.csv")
    return run
