"""The alternative data's ablation on real data, for docs/results.md: the walk-forward of `stockpred evaluate`
(LightGBM, next-session return, default parameters, expanding refits purged by the horizon) with and without each
family of alternative features, on the tickers and years the recorded data covers.

    .venv/bin/python scripts/real_data_ablation.py [--only social news macro]

Builds one data folder: the S&P 500 file (2013-2018) through the files provider, validated and featurized, and the
recorded alternative data through the files providers (stocknet tweets, FNSPID daily news sentiment, EDGAR
recordings, FRED CSVs), the sentiment model trained on the Financial PhraseBank and the alternative features. Then:
- social: the stocknet tickers in the S&P 500 file, trained from 2014 (the tweets start then), tested on 2015;
- news: the FNSPID symbols in the S&P 500 file, tested on 2017-01-01..2018-02-07 (as the main evaluation);
- macro: every ticker, tested on 2017-01-01..2018-02-07 (macro is market-wide);
- filings: the recorded EDGAR submissions are Tesla's, which the 2013-2018 file does not hold: no row to measure.
Every arm of a comparison uses the same tickers, dates and folds; nothing about a test period chooses anything.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sp500_env import MARKET, use_sp500_file  # noqa: E402  (scripts/ is on sys.path when run)

SHARED = MARKET.parent
ALTERNATIVE, MACRO = SHARED / "alternative", SHARED / "macro" / "fred"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RANGE = {"dagster/asset_partition_range_start": "2013-02-08", "dagster/asset_partition_range_end": "2018-02-07"}
MAIN_TEST = {"week": "2018-02-12", "train_weeks": 270, "oos_start": "2017-01-01", "n_folds": 13}
SOCIAL_TEST = {"week": "2016-01-04", "train_weeks": 105, "oos_start": "2015-01-01", "n_folds": 12}


def sp500_tickers() -> set[str]:
    return set(pd.read_csv(MARKET / "all_stocks_5yr.csv.gz", usecols=["Name"])["Name"].unique())


def tweet_tickers() -> set[str]:
    with gzip.open(ALTERNATIVE / "tweets" / "stocknet_tweets_2014_2015.jsonl.gz", "rt") as lines:
        return {json.loads(line)["ticker"] for line in lines}


def news_tickers() -> set[str]:
    folder = ALTERNATIVE / "news" / "fnspid_daily_sentiment"
    return {p.stem.upper().replace("-", ".") for p in folder.glob("*.csv")}


def configure(data_dir: str) -> None:
    use_sp500_file(data_dir)
    os.environ.update(
        {
            "STOCKPRED_NEWS_PROVIDERS": "files",
            "STOCKPRED_NEWS_PATHS": str(ALTERNATIVE / "news" / "fnspid_daily_sentiment"),
            "STOCKPRED_SOCIAL_PROVIDERS": "files",
            "STOCKPRED_SOCIAL_PATHS": str(ALTERNATIVE / "tweets" / "stocknet_tweets_2014_2015.jsonl.gz"),
            "STOCKPRED_FILINGS_SOURCE": "sec_files",
            "STOCKPRED_SEC_PATH": str(ALTERNATIVE / "sec"),
            "STOCKPRED_MACRO_SOURCE": "fred_files",
            "STOCKPRED_MACRO_PATH": str(MACRO),
            "STOCKPRED_SENTIMENT_SENTENCES": str(
                ALTERNATIVE / "sentiment_training" / "financial_phrasebank_all_data.csv"
            ),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=["social", "news", "macro"], default=["social", "news", "macro"])
    parser.add_argument("--data-dir", help="reuse a folder an earlier run built (skips the daily and alt jobs)")
    parser.add_argument(
        "--label", choices=["return", "rank"], default="return", help="the training target (metrics: the return)"
    )
    args = parser.parse_args()
    if not (ALTERNATIVE / "tweets").is_dir():
        sys.exit(f"{ALTERNATIVE} not found: the script reads ../shared/data")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="stockpred-ablation-")
    configure(data_dir)
    import dagster as dg

    from stockpred_assets.definitions import build_definitions

    defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
    if not args.data_dir:
        sentiment = defs.resolve_implicit_global_asset_job_def(), {"asset_selection": [dg.AssetKey("sentiment_model")]}
        steps = {
            "daily_data_job": (defs.resolve_job_def("daily_data_job"), {"tags": RANGE}),
            "sentiment_model": sentiment,  # alt_features scores the tweets with its champion
            "alternative_data_job": (defs.resolve_job_def("alternative_data_job"), {"tags": RANGE}),
        }
        for step, (job, options) in steps.items():
            began = time.monotonic()
            result = job.execute_in_process(instance=instance, run_config=QUIET, **options)
            if not result.success:
                sys.exit(f"{step} failed")
            print(f"{step}: {time.monotonic() - began:.0f} s", flush=True)
    print(f"data in {data_dir}\n")
    universe = sp500_tickers()
    arms = {
        "social": (sorted(universe & tweet_tickers()), SOCIAL_TEST, [["social"], ["macro"], ["social", "macro"]]),
        "news": (sorted(universe & news_tickers()), MAIN_TEST, [["news"], ["news", "macro"]]),
        "macro": (None, MAIN_TEST, [["macro"]]),
    }
    print(
        f"{'universe':>9} {'tickers':>7} {'families':>24} {'out-of-sample':>23} {'rank IC':>8} {'t':>6} "
        f"{'TopK net':>9} {'excess':>8} {'IR':>6} {'beta':>5} {'alpha':>7} {'alpha t':>7} {'L/S Sharpe':>10} "
        f"{'turnover':>8} {'flat days':>9} {'ΔIC vs technical':>16} {'t':>5}"
    )
    returns = realized_returns()
    for name in args.only:
        tickers, test, families = arms[name]
        base = None
        for extra in [[], *families]:
            m = backtest(defs, instance, tickers, test, ["technical", *extra], args.label)
            ic = daily_rank_ic(m["oos_predictions_file"], returns)
            base = ic if base is None else base
            gain, gain_t = paired_t(ic, base) if extra else (np.nan, np.nan)
            label = "+".join(["technical", *extra]).replace("technical+", "+") if extra else "technical"
            print(
                f"{name:>9} {len(tickers) if tickers else 505:>7} {label:>24} {m['oos_range']:>23} "
                f"{m['rank_ic']:>8.4f} {m['rank_ic_t']:>6.2f} {m['annual_return']:>+9.1%} "
                f"{m['excess_return_index']:>+8.1%} {m['information_ratio_index']:>6.2f} {m['beta_index']:>5.2f} "
                f"{m['alpha_index']:>+7.1%} {m['alpha_t_index']:>7.2f} {m['long_short_sharpe']:>10.2f} "
                f"{m['turnover']:>8.1%} {flat_days(m['oos_predictions_file']):>9.1%} {_signed(gain, 16, 4)} "
                f"{_signed(gain_t, 5, 2, sign='')}",
                flush=True,
            )


def realized_returns() -> pd.Series:
    """Next-session total returns by (date, ticker) from the lake's validated bars (what the rank IC is measured on)."""
    from stockpred_core.data.adjustments import adjust
    from stockpred_core.dataset.labels import forward_returns
    from stockpred_core.io.lake import Lake
    from stockpred_core.settings import load_settings

    lake = Lake(load_settings().lake_url)
    bars, events = (lake.read_range("validated", t, "2013-01-01", "2018-02-09") for t in ("bars", "events"))
    return forward_returns(adjust(bars, events), 1)


def daily_rank_ic(path: str, returns: pd.Series) -> pd.Series:
    """The Spearman correlation of each day's predictions with the realized next-session returns."""
    frame = pd.read_parquet(path).set_index(["date", "ticker"])["prediction"].to_frame()
    frame["realized"] = returns.reindex(frame.index)
    frame = frame.dropna()
    ranked = frame.groupby(level="date").rank()
    return ranked.groupby(level="date").apply(lambda day: day["prediction"].corr(day["realized"]))


def paired_t(arm: pd.Series, base: pd.Series) -> tuple[float, float]:
    """Mean daily rank IC difference (arm - base) on the days both rank, and its t (days are not overlapping: h=1)."""
    diff = (arm - base).dropna()
    return float(diff.mean()), float(diff.mean() / diff.std() * np.sqrt(len(diff))) if len(diff) > 1 else np.nan


def _signed(value: float, width: int, digits: int, sign: str = "+") -> str:
    """`value` formatted, or "-" where there is none (the technical arm against itself)."""
    return f"{'-':>{width}}" if np.isnan(value) else f"{value:>{sign}{width}.{digits}f}"


def flat_days(path: str) -> float:
    """The share of out-of-sample days whose predictions are one value for every ticker (no ranking at all)."""
    predictions = pd.read_parquet(path)
    return float((predictions.groupby("date")["prediction"].nunique() == 1).mean())


def backtest(defs, instance, tickers: list[str] | None, test: dict, families: list[str], label: str) -> dict:
    import dagster as dg

    config = {
        "family": "lightgbm",
        "label": label,
        "horizon": 1,
        "train_weeks": test["train_weeks"],
        "oos_start": test["oos_start"],
        "n_folds": test["n_folds"],
        "feature_families": families,
        **({"tickers": tickers} if tickers else {}),
    }
    result = defs.resolve_job_def("weekly_training_job").execute_in_process(
        instance=instance,
        run_config={**QUIET, "ops": {"backtest_report": {"config": config}}},
        partition_key=test["week"],
        asset_selection=[dg.AssetKey("backtest_report")],
    )
    return {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}


if __name__ == "__main__":
    main()
