"""The daily increment at scale: one session through ingest -> validate -> features -> predictions -> online features
-> drift as ONE run in one process, per asset seconds, peak RSS and rows/s, beside a bare reference.

    .venv/bin/python benchmarks/daily_increment.py                                 # 1,000 and 10,000 simulated
    .venv/bin/python benchmarks/daily_increment.py --tickers 50000                 # any sizes
    .venv/bin/python benchmarks/daily_increment.py --file BARS.csv --day 2017-06-30   # a real file (csv/parquet)
    .venv/bin/python benchmarks/daily_increment.py --growth                        # features: 1 / 20 / 250 sessions

Each case gets its own lake and MLflow registry in a temporary folder. Setup (not timed): the bars are written to one
multi-session file that the `files` provider reads (the simulated market, or the given file as is); `HISTORY`
sessions before the day are ingested and validated, `features` is backfilled for the last `FEATURED` of them (so the
drift window is full and the state after the eve is stored), a LightGBM champion is fitted on the first 15 of those
days' features and registered with its card and promotion tag, as training does, and `predictions` scores the
featured days after its cut-off and `drift_report` reports on them (the state the daily runs before the measured one
leave: a history of predictions, each session's drift bin counts). Timed: the
day's partition of `daily_data_job` plus `drift_report` (the asset checks included), in one `execute_in_process`, in
a fresh process (imports not counted: they are paid once per process, `stockpred` plus Dagster ~10 s here). Peak RSS
is the process's high-water mark; per-asset peaks are sampled every 20 ms.

Reference: the same day's windowed features computed bare with DuckDB over the validated Parquet partitions of the
look-back (returns, volatility, SMA gaps, volume ratio, 60-session beta to the equal-weight market, ranks: 14
columns, no indicator recursions, no library): what one day of "just SQL" costs on the same machine.

Growth (--growth, 1,000 simulated tickers, 760 sessions of bars): `features` for 1 session (the daily run, from the
stored state), then backfills of 20 and 250 sessions without a state before them (column-wise, or session by session
past the memory budget: the last column says which, from the run's metadata), each on the same lake.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HISTORY = 180  # sessions ingested before the day: the first featured one has the 120 the regime reads
FEATURED = 45  # of which the last are featurized: the drift window (40 sessions) is full
DAY = "2016-06-30"  # simulated market: the sessions since 2013 are simulated for each ticker
ASSETS = ["raw_bars_files", "validated_bars", "features", "predictions", "online_features", "drift_report"]

SETUP = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
spec = json.loads(sys.argv[1])
from stockpred_core.data import calendar
day = pd.Timestamp(spec["day"])
sessions = calendar.previous_sessions(day, spec["history"])
if spec["simulated"]:
    from stockpred_core.data.simulation import simulate_market
    bars, _ = simulate_market(7, spec["simulated"], sessions[0], day)
    columns = ["date", "ticker", "open", "high", "low", "close", "adj_close", "volume"]
    bars[columns].to_parquet(spec["file"], index=False)
import dagster as dg, mlflow
from stockpred_assets.definitions import build_definitions
from stockpred_core.settings import load_settings
from stockpred_core.io.lake import Lake
defs, instance = build_definitions(), dg.DagsterInstance.get()
job = defs.resolve_implicit_global_asset_job_def()
quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
def span(a, b):
    start, end = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
    return {start: f"{a:%Y-%m-%d}", end: f"{b:%Y-%m-%d}"}
keys = lambda *names: [dg.AssetKey(n) for n in names]
# in runs of 45 sessions (50,000 tickers x 180 sessions at once would hold ~9M rows through validation) ...
for k in range(0, len(sessions), 45):
    part = sessions[k : k + 45]
    assert job.execute_in_process(instance=instance, asset_selection=keys("raw_bars_files", "validated_bars"),
                                  tags=span(part[0], part[-1]), run_config=quiet).success
# ... and features in runs of 5, each after the state of the one before (a backfill at once holds ~220 wide frames)
featured = sessions[-spec["featured"]:]
for k in range(0, len(featured), 5):
    part = featured[k : k + 5]
    assert job.execute_in_process(instance=instance, asset_selection=keys("features"),
                                  tags=span(part[0], part[-1]), run_config=quiet).success
# A champion as training logs one: LightGBM on the technical set, its card's segments inside the featured days.
from stockpred_core.features.catalog import FEATURE_COLUMNS, FEATURE_SET_VERSION
from stockpred_core.io.model_card import CHAMPION_ALIAS, CHAMPION_FROM_TAG, card_params, card_tags
from stockpred_core.io.model_registry import configure_mlflow, log_forecaster
from stockpred_core.models.lgbm import LGBMForecaster
settings = load_settings()
lake = Lake(settings.lake_url)
# trained on the first 15 featured days (labels 5 sessions on), in force from the Monday after their last label:
# the predictions asset then scores the later featured days as the champion in force, as in steady state
train, test = featured[:10], featured[10:15]
cutoff = featured[20] - pd.Timedelta(days=featured[20].weekday()) + pd.Timedelta(days=7)
rows = lake.read_range("features", "features", train[0], test[-1]).dropna(subset=FEATURE_COLUMNS)
future = lake.read_range("validated", "bars", train[0], featured[-1], columns=["date", "ticker", "close"])
close = future.pivot(index="date", columns="ticker", values="close")
label = (close.shift(-5) / close - 1).stack().rename("y")
rows = rows.join(label, on=["date", "ticker"]).dropna(subset=["y"])
X, y = rows[FEATURE_COLUMNS], rows["y"]
model = LGBMForecaster(num_boost_round=40, seed=1, params={"min_data_in_leaf": 200}).fit(X, y)
configure_mlflow(settings.mlflow_tracking_uri, settings.mlflow_experiment, settings.mlflow_artifact_location)
with mlflow.start_run():
    mlflow.log_params(card_params(horizon=5, label="return", cutoff=cutoff, train_weeks=3,
                                  segments={"train": f"{train[0]:%Y-%m-%d}..{train[-1]:%Y-%m-%d}",
                                            "test": f"{test[0]:%Y-%m-%d}..{test[-1]:%Y-%m-%d}"},
                                  feature_set_version=FEATURE_SET_VERSION, feature_columns=FEATURE_COLUMNS))
    mlflow.set_tags(card_tags(f"{cutoff:%Y-%m-%d}", model.family))
    mlflow.log_metrics({"test_rank_ic": 0.0, "test_ic": 0.0, "test_mse_vs_naive": 1.0})
    info = log_forecaster(model, settings.registered_model, X.head(5))
version = str(info.registered_model_version)
client = mlflow.MlflowClient()
for key, value in {**card_tags(f"{cutoff:%Y-%m-%d}", model.family), CHAMPION_FROM_TAG: f"{cutoff:%Y-%m-%d}"}.items():
    client.set_model_version_tag(settings.registered_model, version, key, value)
client.set_registered_model_alias(settings.registered_model, CHAMPION_ALIAS, version)
scored = featured[featured >= cutoff]
assert job.execute_in_process(instance=instance, asset_selection=keys("predictions"),
                              tags=span(scored[0], scored[-1]), run_config=quiet).success
# and the drift reports of those days, as the daily runs before the measured one left them (their bin counts kept)
assert job.execute_in_process(instance=instance, asset_selection=keys("drift_report"),
                              tags=span(scored[0], scored[-1]), run_config=quiet).success
print(json.dumps({"bars": int(len(lake.read_range("validated", "bars", sessions[-1], sessions[-1])))}), flush=True)
import os
os._exit(0)  # past the interpreter's teardown, where a library thread once aborted the process after its work was done
"""

DAILY = r"""
import json, resource, sys, threading, time, warnings
warnings.filterwarnings("ignore")
spec = json.loads(sys.argv[1])
import dagster as dg
from stockpred_assets.definitions import build_definitions
defs, instance = build_definitions(), dg.DagsterInstance.get()
job = defs.resolve_implicit_global_asset_job_def()
samples = []
def sample():
    page = resource.getpagesize()
    while True:
        with open("/proc/self/statm") as f:
            samples.append((time.time(), int(f.read().split()[1]) * page / 2**20))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
began = time.perf_counter()
if spec["range"]:
    first, last = spec["range"]
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(a) for a in spec["assets"]],
                                    tags=tags, run_config=quiet)
else:
    result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(a) for a in spec["assets"]],
                                    partition_key=spec["day"], run_config=quiet)
total = time.perf_counter() - began
assert result.success
steps, rows, how = {}, {}, {}
for entry in instance.all_logs(result.run_id):
    event = entry.dagster_event
    if event is None or event.step_key is None:
        continue
    name = event.step_key
    if event.event_type_value == "STEP_START":
        steps[name] = [entry.timestamp, None]
    elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and name in steps:
        steps[name][1] = entry.timestamp
    elif event.event_type_value == "ASSET_MATERIALIZATION":
        meta = event.event_specific_data.materialization.metadata
        if "dagster/row_count" in meta:
            rows[name] = meta["dagster/row_count"].value
        if "computed" in meta:
            how[name] = meta["computed"].value
out = {}
for name, (a, b) in steps.items():
    peak = max((m for t, m in samples if a <= t <= b), default=0.0)
    out[name] = {"seconds": round(b - a, 2), "peak_mb": round(peak), "rows": rows.get(name), "how": how.get(name)}
peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({"total_s": round(total, 2), "peak_mb": peak_mb, "steps": out}), flush=True)
import os
os._exit(0)  # as the setup: the figures are out, skip the teardown
"""

REFERENCE = r"""
import json, sys, time
import duckdb, pandas as pd
spec = json.loads(sys.argv[1])
from stockpred_core.data import calendar
from stockpred_core.settings import load_settings
lake = load_settings().lake_url
day = pd.Timestamp(spec["day"])
start = calendar.previous_sessions(day, 60)[0]
began = time.perf_counter()
con = duckdb.connect()
con.execute(f"SET threads = {spec['threads']}")
con.execute("SET enable_progress_bar = false")  # it prints to stdout on long queries
rows = con.execute(f'''
WITH b AS (
  SELECT date, ticker, close, volume FROM read_parquet('{lake}/validated/bars/*/*.parquet', hive_partitioning = true)
  WHERE date BETWEEN DATE '{start:%Y-%m-%d}' AND DATE '{day:%Y-%m-%d}'),
r AS (SELECT *, ln(close / lag(close) OVER w) AS lr,
        close / lag(close, 1) OVER w - 1 AS ret_1, close / lag(close, 5) OVER w - 1 AS ret_5,
        close / lag(close, 20) OVER w - 1 AS ret_20,
        close / avg(close) OVER (w ROWS 9 PRECEDING) - 1 AS sma_10_gap,
        close / avg(close) OVER (w ROWS 19 PRECEDING) - 1 AS sma_20_gap,
        close / avg(close) OVER (w ROWS 49 PRECEDING) - 1 AS sma_50_gap,
        volume / avg(volume) OVER (w ROWS 19 PRECEDING) AS volume_ratio_20
      FROM b WINDOW w AS (PARTITION BY ticker ORDER BY date)),
m AS (SELECT date, avg(lr) AS mr FROM r GROUP BY date),
s AS (SELECT r.*, m.mr,
        stddev_samp(lr) OVER (w ROWS 19 PRECEDING) * sqrt(252) AS volatility_20,
        covar_pop(lr, m.mr) OVER (w ROWS 59 PRECEDING) / var_pop(m.mr) OVER (w ROWS 59 PRECEDING) AS beta_60,
        corr(lr, m.mr) OVER (w ROWS 59 PRECEDING) AS corr_60
      FROM r JOIN m USING (date) WINDOW w AS (PARTITION BY ticker ORDER BY date))
SELECT *, percent_rank() OVER (ORDER BY ret_5) AS ret_5_rank, percent_rank() OVER (ORDER BY ret_20) AS ret_20_rank,
       percent_rank() OVER (ORDER BY volatility_20) AS volatility_20_rank,
       percent_rank() OVER (ORDER BY sma_20_gap) AS sma_20_gap_rank
FROM s WHERE date = DATE '{day:%Y-%m-%d}'
''').df()
print(json.dumps({"seconds": round(time.perf_counter() - began, 3), "rows": len(rows), "columns": rows.shape[1] - 6}))
"""


def child(code: str, env: dict, spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], env={**os.environ, **env}, capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(f"benchmark step failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def case(root: Path, file: Path, day: str, simulated: int, history: int, featured: int) -> tuple[dict, dict]:
    env = {
        "STOCKPRED_ENV": "local",
        "STOCKPRED_DATA_DIR": str(root),
        "DAGSTER_HOME": str(root / "dagster"),
        "STOCKPRED_PROVIDERS": "files",
        "STOCKPRED_FILES_PATH": str(file),
    }
    done = root / "setup.json"
    if done.exists():  # --keep: a lake set up by an earlier run (the measured day is run again on it)
        return env, json.loads(done.read_text())
    (root / "dagster").mkdir(parents=True, exist_ok=True)
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    spec = {"day": day, "history": history, "featured": featured, "simulated": simulated, "file": str(file)}
    setup = child(SETUP, env, spec)
    done.write_text(json.dumps(setup))
    return env, setup


def run_daily(env: dict, day: str, assets: list[str], span: tuple[str, str] | None = None) -> dict:
    return child(DAILY, env, {"day": day, "assets": assets, "range": list(span) if span else None})


def report(label: str, env: dict, day: str) -> None:
    daily = run_daily(env, day, ASSETS)
    steps = daily["steps"]
    bars = steps.get("validated_bars", {}).get("rows") or 0
    print(f"\n{label}: {bars:,} bars on {day}; one run, {daily['total_s']:.1f} s, peak RSS {daily['peak_mb']:,} MB")
    print(f"{'step':<46}{'seconds':>9}{'peak MB':>9}{'rows/s':>11}")
    for name in [a for a in ASSETS if a in steps]:
        step = steps[name]
        rate = f"{step['rows'] / step['seconds']:,.0f}" if step["rows"] and step["seconds"] else "-"
        print(f"{name:<46}{step['seconds']:>9.2f}{step['peak_mb']:>9,}{rate:>11}")
        checks = [s for key, s in steps.items() if key.startswith(f"{name}_")]
        if checks:
            seconds, peak = sum(c["seconds"] for c in checks), max(c["peak_mb"] for c in checks)
            print(f"{'  its ' + str(len(checks)) + ' asset checks':<46}{seconds:>9.2f}{peak:>9,}{'-':>11}")
    reference = child(REFERENCE, env, {"day": day, "threads": os.cpu_count()})
    feats = steps["features"]["seconds"]
    print(
        f"reference (DuckDB, {reference['columns']} windowed columns of the day): {reference['seconds']:.2f} s; "
        f"features / reference = {feats / reference['seconds']:.1f}"
    )
    targets = {
        "whole run <= 30 s": daily["total_s"] <= 30,
        "peak <= 2 GB": daily["peak_mb"] <= 2048,
        "drift_report < 5 s": steps["drift_report"]["seconds"] < 5,
    }
    scope = "" if 9_000 <= bars <= 11_000 else f", measured at {bars:,} bars"
    verdicts = ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items())
    print(f"targets (set for 10,000 tickers{scope}): {verdicts}")


def growth(root: Path) -> None:
    from stockpred_core.data import calendar

    eve = f"{calendar.previous_sessions(DAY, 1)[-1]:%Y-%m-%d}"
    env, _ = case(root, root / "market.parquet", DAY, 1000, 760, FEATURED)  # a full look-back before 250 sessions
    print("\nfeatures alone, 1,000 simulated tickers:")
    print(f"{'sessions':>9}{'seconds':>9}{'peak MB':>9}{'s/session':>11}  how")
    for count in (1, 20, 250):
        if count == 1:  # the day after the stored state (its bars ingested in the same run)
            result = run_daily(env, DAY, ["raw_bars_files", "validated_bars", "features"])
        else:  # a backfill ending on the eve, without a state before it
            first = f"{calendar.previous_sessions(DAY, count)[0]:%Y-%m-%d}"
            result = run_daily(env, eve, ["features"], (first, eve))
        step = result["steps"]["features"]
        print(f"{count:>9}{step['seconds']:>9.2f}{step['peak_mb']:>9,}{step['seconds'] / count:>11.3f}  {step['how']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--file", type=Path, help="a real bars file (csv/parquet), read by the files provider")
    parser.add_argument("--day", default=None, help="the session to run (default: the file's last, or 2016-06-30)")
    parser.add_argument("--growth", action="store_true", help="features alone over 1 / 20 / 250 sessions")
    parser.add_argument(
        "--keep", type=Path, help="build the lakes under this folder and keep them; a kept lake is measured again"
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stockpred-daily-") as scratch:
        tmp = args.keep or scratch
        if args.growth:
            growth(Path(tmp) / "growth")
            return
        if args.file:
            import pandas as pd

            day = args.day or f"{pd.read_csv(args.file, usecols=[0]).iloc[:, 0].max()}"[:10]
            env, _ = case(Path(tmp) / "file", args.file.resolve(), day, 0, HISTORY, FEATURED)
            report(f"{args.file.name}", env, day)
        else:
            for count in args.tickers:
                root = Path(tmp) / f"sim{count}"
                env, _ = case(root, root / "market.parquet", args.day or DAY, count, HISTORY, FEATURED)
                report(f"{count:,} simulated tickers", env, args.day or DAY)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
