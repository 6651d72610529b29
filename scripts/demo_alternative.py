"""`make demo`, the alternative-data part: the recorded news, tweets, filings and macro series through the
alternative asset group, and a model trained with them.

Ten tickers of the real S&P 500 file that the stocknet tweets and FNSPID's news scores both cover, 2013-06..2015-12
(../shared/data), in a data folder of its own (data/alternative-demo: lake, MLflow registry), with the runs on the
Dagster instance under $DAGSTER_HOME so `make dev` lists them:
1. daily_data_job: raw, validated bars and the feature table of the ten tickers;
2. sentiment_model: TF-IDF + logistic regression trained on the Financial PhraseBank, registered in MLflow;
3. alternative_data_job over 2014-2015: raw_news_files (FNSPID), raw_social_files (stocknet), raw_filings_sec (the
   EDGAR recordings: Tesla's, which is not among the ten: its coverage shows as 0), macro_series (FRED CSVs) and
   alt_features (texts scored by the sentiment model);
4. lgbm_model for the week of 2016-01-04 on the technical set plus news, social and macro (filings cover none of
   the ten), and on the technical set alone.
Prints each asset's rows and coverage, the sentiment model's hold-out accuracy, and both models' test-segment
figures. Ten tickers and one test segment say nothing about forecast skill: docs/results.md has the ablation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MARKET, ALTERNATIVE, FRED = SHARED / "market", SHARED / "alternative", SHARED / "macro" / "fred"
TICKERS = ("AAPL", "AMZN", "C", "DIS", "GE", "INTC", "KO", "MSFT", "WFC", "WMT")
BARS_START, ALT_START, END = "2013-06-03", "2014-01-02", "2015-12-31"
WEEK = "2016-01-04"
FAMILIES = ["technical", "news", "social", "macro"]  # filings: the recordings cover none of the ten (Tesla)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def environment(data_dir: Path) -> dict[str, str]:
    """The S&P 500 file and the alternative recordings through the files providers, in `data_dir`."""
    return {
        "STOCKPRED_ENV": "local",
        "STOCKPRED_DATA_DIR": str(data_dir),
        "STOCKPRED_PROVIDERS": "files",
        "STOCKPRED_FILES_PATH": str(MARKET / "all_stocks_5yr.csv.gz"),
        "STOCKPRED_UNIVERSE": ",".join(TICKERS),
        "STOCKPRED_INDEX_FILE": str(MARKET / "GSPC.csv"),
        "STOCKPRED_VIX_FILE": str(MARKET / "VIX_History.csv"),
        "STOCKPRED_NEWS_PROVIDERS": "files",
        "STOCKPRED_NEWS_PATHS": str(ALTERNATIVE / "news" / "fnspid_daily_sentiment"),
        "STOCKPRED_SOCIAL_PROVIDERS": "files",
        "STOCKPRED_SOCIAL_PATHS": str(ALTERNATIVE / "tweets" / "stocknet_tweets_2014_2015.jsonl.gz"),
        "STOCKPRED_FILINGS_SOURCE": "sec_files",
        "STOCKPRED_SEC_PATH": str(ALTERNATIVE / "sec"),
        "STOCKPRED_MACRO_SOURCE": "fred_files",
        "STOCKPRED_MACRO_PATH": str(FRED),
        "STOCKPRED_SENTIMENT_SENTENCES": str(ALTERNATIVE / "sentiment_training" / "financial_phrasebank_all_data.csv"),
        "STOCKPRED_FEATURE_FAMILIES": ",".join(FAMILIES),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }


def run(step: str, job, instance, **kwargs):
    began = time.monotonic()
    result = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
    print(f"  {step:<34} {'ok' if result.success else 'FAILED'} in {time.monotonic() - began:5.1f}s", flush=True)
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(f"    {event.step_key}: {event.event_specific_data.error.message.strip()[:500]}", file=sys.stderr)
        sys.exit(f"{step} failed: `make dev` -> Runs -> {result.run_id}")
    return result


def meta(result, node: str) -> dict:
    [event] = result.asset_materializations_for_node(node)[-1:]
    return {k: v.value for k, v in event.metadata.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "alternative-demo"))
    args = parser.parse_args()
    missing = [p for p in (MARKET, ALTERNATIVE, FRED) if not p.is_dir()]
    if missing:
        print(f"\nAlternative-data part skipped: {missing[0]} is missing")
        return
    data_dir = Path(args.data_dir).resolve()
    os.environ.update(environment(data_dir))
    sys.path.insert(0, str(ROOT))
    import dagster as dg

    from stockpred_assets.definitions import build_definitions

    # make demo sets DAGSTER_HOME (the runs then show in `make dev`); run alone without it, an ephemeral instance
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    defs = build_definitions()
    print(f"\nAlternative data: {', '.join(TICKERS)}, news/tweets/filings/macro {ALT_START}..{END} -> {data_dir}")
    daily = defs.resolve_job_def("daily_data_job")
    # predictions and backtest_history score each day with the champion in force that week: there is none yet
    bars = [k for k in daily.asset_layer.executable_asset_keys if k.path[-1] not in ("predictions", "backtest_history")]
    tags = {RANGE_START_TAG: BARS_START, RANGE_END_TAG: END}
    run("daily_data_job (bars, features)", daily, instance, run_config=QUIET, tags=tags, asset_selection=bars)
    everything = defs.resolve_implicit_global_asset_job_def()
    model = run(
        "sentiment_model", everything, instance, run_config=QUIET, asset_selection=[dg.AssetKey("sentiment_model")]
    )
    sentiment = meta(model, "sentiment_model")
    tags = {RANGE_START_TAG: ALT_START, RANGE_END_TAG: END}
    alternative = run(
        "alternative_data_job", defs.resolve_job_def("alternative_data_job"), instance, run_config=QUIET, tags=tags
    )
    print(
        f"\n  sentiment_model v{sentiment['model_version']}: hold-out accuracy {sentiment['holdout_accuracy']:.3f} "
        f"on {sentiment['n_holdout']} sentences (always-neutral {sentiment['neutral_baseline_accuracy']:.3f}, 5-fold "
        f"CV {sentiment['cv_accuracy']:.3f})"
    )
    print(f"  {'asset':<18} {'rows':>7}  {'coverage (subjects x sessions with data)':<48} quarantined  dead letters")
    for node in ("raw_news_files", "raw_social_files", "raw_filings_sec", "macro_series"):
        m = meta(alternative, node)
        print(
            f"  {node:<18} {m['dagster/row_count']:>7}  {m['coverage']:<48} {m.get('quarantined', 0):>11}  "
            f"{m.get('failed_subjects', 0):>12}"
        )
    features = meta(alternative, "alt_features")
    print(
        f"\n  alt_features: {features['dagster/row_count']} rows (feature set {features['alt_feature_set_version']});"
    )
    for record in features["coverage"].records:
        row = record.data
        print(
            f"    {row['family']:<8} covered on {row['covered_cells']:>5} of {row['rows']} ticker-days "
            f"({row['share']:.1%})"
        )
    weekly = defs.resolve_job_def("weekly_training_job")
    print(f"\nlgbm_model for the week of {WEEK} (100 weeks of history, no tuning):")
    for families in (FAMILIES, ["technical"]):
        config = {"feature_families": families, "n_trials": 0, "num_boost_round": 200, "train_weeks": 100}
        result = run(
            "lgbm_model " + "+".join(families).replace("technical+", "+"), weekly, instance,
            partition_key=WEEK, asset_selection=[dg.AssetKey("lgbm_model")],
            run_config={**QUIET, "ops": {"lgbm_model": {"config": config}}},
        )  # fmt: skip
        m = meta(result, "lgbm_model")
        print(
            f"    v{m['model_version']}: feature set {m['feature_set_version']}, {m['feature_columns']} columns, "
            f"test rank IC {m.get('test_rank_ic', float('nan')):+.4f}"
            + (
                f"; no values in the window for {m['alt_columns_without_values']}"
                if "alt_columns_without_values" in m
                else ""
            )
        )
    print(
        "\nIn the Dagster UI: the `make dev` command of docs/alternative_data.md with "
        f"STOCKPRED_DATA_DIR={data_dir} shows the alternative group's assets, their coverage and the "
        "sentiment-vs-return plot (alt_features)."
    )


if __name__ == "__main__":
    main()
