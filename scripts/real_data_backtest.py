"""Portfolio backtest on the real S&P 500 file (2013-2018), through the platform, beside Qlib's figures (README).

    .venv/bin/python scripts/real_data_backtest.py [--folds 13] [--data-dir DIR]

Ingests ../shared/data/market/all_stocks_5yr.csv.gz with the files provider, validates it and builds features (one
run each, ^GSPC as the market index, the real VIX), then materializes `backtest_report` for the week after the file
ends: LightGBM (60 rounds, default parameters) refit 13 times on expanding windows whose test blocks tile
2017-01-01..2018-02-07, each trained only on dates before its block minus a purge of the 1-session horizon. The asset
trades the predictions with Qlib's benchmark strategy, TopK 50 / drop 5 with 5 bps to open and 15 bps to close, and
reports against ^GSPC and the equal-weighted universe. The script prints those figures, then the same out-of-sample
predictions traded one session later (Qlib's timing: its Alpha158 label is Ref($close, -2) / Ref($close, -1) - 1)
and with the other books (top 50 with and without a turnover cap, long-short), from the predictions file the asset
wrote beside its HTML report.

Qlib's figures are Qlib 0.9.7's LightGBM + Alpha158 workflow on the same file and test period (TopkDropoutStrategy
topk 50 / n_drop 5, open_cost 0.0005, close_cost 0.0015): its risk_analysis of the excess return before and after
costs, whose conventions the script follows (arithmetic annualization x 252, IR = mean / std x sqrt(252), max
drawdown of the summed excess return).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

from sp500_env import MARKET, use_sp500_file  # noqa: E402  (scripts/ is on sys.path when run)

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
WEEK = "2018-02-12"  # the file ends on 2018-02-07: the backtest of the following week sees all of it
# Qlib 0.9.7, LightGBM + Alpha158 on the same data, TopK 50 / drop 5, 5 + 15 bps: (before costs, after costs)
QLIB = {
    "annualized excess return": (0.017, -0.030),
    "information ratio": (0.35, -0.62),
    "max drawdown of excess (sum)": (-0.041, -0.062),
    "turnover a day (two-sided)": (0.20, 0.20),
}


def run_platform(data_dir: str, folds: int) -> dict:
    """The daily data assets over the whole file, then the week's walk-forward backtest; its metadata."""
    import dagster as dg

    from stockpred_assets.definitions import build_definitions

    defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": "2013-02-08", "dagster/asset_partition_range_end": "2018-02-07"}
    began = time.monotonic()
    daily = defs.resolve_job_def("daily_data_job").execute_in_process(
        instance=instance,
        run_config=QUIET,
        tags=tags,
        asset_selection=[dg.AssetKey(k) for k in ("raw_bars_files", "validated_bars", "features")],
    )
    if not daily.success:
        sys.exit("the daily job failed")
    print(f"ingested, validated and featurized in {time.monotonic() - began:.0f} s (data in {data_dir})", flush=True)
    config = {
        "family": "lightgbm",
        "label": "return",
        "horizon": 1,
        "train_weeks": 270,
        "oos_start": "2017-01-01",
        "n_folds": folds,
        "top_k": 50,
        "n_drop": 5,
        "open_cost_bps": 5.0,
        "close_cost_bps": 15.0,
    }
    began = time.monotonic()
    result = defs.resolve_job_def("weekly_training_job").execute_in_process(
        instance=instance,
        run_config={**QUIET, "ops": {"backtest_report": {"config": config}}},
        partition_key=WEEK,
        asset_selection=[dg.AssetKey("backtest_report")],
    )
    meta = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
    print(f"backtest_report ({folds} LightGBM refits and the report) in {time.monotonic() - began:.0f} s", flush=True)
    return meta


def variants(meta: dict, lake_url: str):
    """The asset's out-of-sample predictions traded at the prediction's close and one session later, by every book."""
    import pandas as pd

    from stockpred_core.data.adjustments import adjust
    from stockpred_core.data.context import read_close_series
    from stockpred_core.evaluation.report import build_report
    from stockpred_core.evaluation.returns import returns_from_bars
    from stockpred_core.evaluation.strategies import Strategy
    from stockpred_core.io.lake import Lake

    frame = pd.read_parquet(meta["oos_predictions_file"])
    pred = frame.set_index(["date", "ticker"])["prediction"]
    lake = Lake(lake_url)
    first = frame["date"].min() - pd.Timedelta(days=10)
    bars = lake.read_range("validated", "bars", first, "2018-02-07")
    returns = returns_from_bars(adjust(bars, lake.read_range("validated", "events", first, "2018-02-07")))
    index = read_close_series(str(MARKET / "GSPC.csv"))
    reports = {}
    for delay in (0, 1):
        books = (
            Strategy("topk_dropout", k=50, n_drop=5, delay=delay),
            Strategy("topk", k=50, max_turnover=0.2, delay=delay),
            Strategy("topk", k=50, delay=delay),
            Strategy("long_short", k=50, max_turnover=0.4, delay=delay),
        )
        reports[delay] = build_report(pred, returns, horizon=1, strategies=books, index_close=index, index_name="GSPC")
    return reports


def qlib_rows(report) -> dict[str, tuple[float, float]]:
    """Qlib's figures of the TopK-dropout book (the report's first)."""
    s, book = report.summary, next(iter(report.portfolios))
    gross, net = s.loc[f"{book} gross"], s.loc[f"{book} net"]
    return {
        "annualized excess return": (gross["excess_GSPC"], net["excess_GSPC"]),
        "information ratio": (gross["ir_GSPC"], net["ir_GSPC"]),
        "max drawdown of excess (sum)": (gross["excess_max_drawdown_sum_GSPC"], net["excess_max_drawdown_sum_GSPC"]),
        "turnover a day (two-sided)": (net["turnover"], net["turnover"]),
    }


def fmt(name: str, value: float) -> str:
    return f"{value:+.2f}" if name == "information ratio" else f"{value:+.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=13, help="refits over the test period (13: about monthly)")
    parser.add_argument("--data-dir", default=None, help="where the lake and stores go (default: a new temp dir)")
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="stockpred-backtest-")
    use_sp500_file(data_dir)
    from stockpred_core.settings import load_settings

    meta = run_platform(data_dir, args.folds)
    began = time.monotonic()
    reports = variants(meta, load_settings().lake_url)
    print_figures(meta, reports, time.monotonic() - began)


def print_figures(meta: dict, reports: dict, seconds: float) -> None:
    at_close, next_day = reports[0], reports[1]
    print(
        f"\nout of sample {meta['oos_range']}, {meta['oos_predictions']:,} predictions; rank IC "
        f"{meta['rank_ic']:.4f} (t {meta['rank_ic_t']:.2f}), IC {meta['ic']:.4f}, hit rate {meta['hit_rate']:.3f}"
    )
    print("TopK 50 / drop 5, 5 bps open + 15 bps close, excess over ^GSPC    (before costs / after costs)")
    columns = ("trade at D's close", "trade at D+1 (Qlib)", "Qlib LightGBM+Alpha158")
    print(f"{'':<30}" + "".join(f"{c:>26}" for c in columns))
    rows = [qlib_rows(at_close), qlib_rows(next_day), QLIB]
    for name in QLIB:
        cells = [f"{fmt(name, r[name][0])} / {fmt(name, r[name][1])}" for r in rows]
        if name.startswith("turnover"):
            cells = [f"{r[name][1]:.1%}" if i < 2 else f"about {r[name][1]:.0%}" for i, r in enumerate(rows)]
        print(f"{name:<30}" + "".join(f"{c:>26}" for c in cells))
    print("\nEvery book, after costs (annualized; excess and IR over ^GSPC; turnover two-sided a day):")
    print(f"{'book':<28}{'delay':>6}{'return':>9}{'Sharpe':>8}{'max DD':>8}{'excess':>9}{'IR':>7}{'turnover':>10}")
    for delay, report in reports.items():
        for book in report.portfolios:
            r = report.summary.loc[f"{book} net"]
            long_only = report.portfolios[book].strategy.long_only  # a long-short spread is not judged by an index
            excess = f"{r['excess_GSPC']:+.1%}" if long_only else "-"
            ir = f"{r['ir_GSPC']:+.2f}" if long_only else "-"
            print(
                f"{book:<28}{delay:>6}{r['annual_return']:>+9.1%}{r['sharpe']:>8.2f}{r['max_drawdown']:>8.1%}"
                f"{excess:>9}{ir:>7}{r['turnover']:>10.1%}"
            )
    for name in ("GSPC", "equal_weight"):
        r = at_close.summary.loc[name]
        print(f"{name:<28}{'':>6}{r['annual_return']:>+9.1%}{r['sharpe']:>8.2f}{r['max_drawdown']:>8.1%}")
    check = at_close.summary.loc["top50_drop5 net", "annual_return"]
    assert abs(check - meta["annual_return"]) < 1e-12, "the asset and the script disagree"
    print(f"\nreport: {meta['report_html']}\n(the eight portfolio variants took {seconds:.1f} s)")


if __name__ == "__main__":
    main()
