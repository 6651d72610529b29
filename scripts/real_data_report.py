"""Out-of-sample rank IC on the real S&P 500 file (2013-2018), through the platform, for the README.

    .venv/bin/python scripts/real_data_report.py [--horizons 1 5] [--models lightgbm:return ...] [--folds 13]

Ingests ../shared/data/market/all_stocks_5yr.csv.gz with the files provider, validates it and builds features (one
run each, with ^GSPC as the market index and the real VIX), then runs `backtest_report` for the week after the file
ends, once per horizon and model (family:label): expanding-window refits with default parameters whose test blocks
tile 2017-01-01..2018-02-07, each trained only on dates before its block minus a purge of the horizon. Nothing about
2017-2018 is used to choose anything. The last column is the Sharpe ratio of the asset's long-short book after costs
(top 50 minus bottom 50, traded daily with a 40% turnover cap, 5 bps to open and 15 to close); the portfolio
figures beside Qlib's are scripts/real_data_backtest.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

from sp500_env import use_sp500_file  # noqa: E402  (scripts/ is on sys.path when run)

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--folds", type=int, default=13, help="refits over the test period (13: about monthly)")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["lightgbm:return", "lightgbm:rank", "torch_mlp:return", "linear:return", "momentum:return"],
        help="family:label pairs (families: lightgbm torch_mlp linear momentum; labels: return rank)",
    )
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="stockpred-real-")
    use_sp500_file(data_dir)
    import dagster as dg

    from stockpred_assets.definitions import build_definitions

    defs, instance = build_definitions(), dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": "2013-02-08", "dagster/asset_partition_range_end": "2018-02-07"}
    daily = defs.resolve_job_def("daily_data_job").execute_in_process(instance=instance, run_config=QUIET, tags=tags)
    if not daily.success:
        sys.exit("the daily job failed")
    print(f"data in {data_dir}\n")
    print(
        f"{'horizon':>7} {'model':>17} {'out-of-sample':>23} {'rank IC':>8} {'rank ICIR':>9} "
        f"{'t (non-overlapping)':>20} {'IC':>8} {'long-short Sharpe':>18} {'seconds':>8}"
    )
    for horizon in args.horizons:
        for model in args.models:
            family, label = model.split(":")
            config = {
                "family": family,
                "label": label,
                "horizon": horizon,
                "train_weeks": 270,
                "oos_start": "2017-01-01",
                "n_folds": args.folds,
            }
            run_config = {**QUIET, "ops": {"backtest_report": {"config": config}}}
            began = time.monotonic()
            result = defs.resolve_job_def("weekly_training_job").execute_in_process(
                instance=instance,
                run_config=run_config,
                partition_key="2018-02-12",
                asset_selection=[dg.AssetKey("backtest_report")],
            )
            m = {k: v.value for k, v in result.asset_materializations_for_node("backtest_report")[0].metadata.items()}
            print(
                f"{horizon:>7} {model:>17} {m['oos_range']:>23} {m['rank_ic']:>8.4f} {m['rank_icir']:>9.3f} "
                f"{m['rank_ic_t']:>20.2f} {m['ic']:>8.4f} {m['long_short_sharpe']:>18.2f} "
                f"{time.monotonic() - began:>8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
