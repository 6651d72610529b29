"""`make demo`, the intraday part: a real recorded session replayed through the live path.

AIG, BAC and IBM's second bars of 2013-10-07 (../shared/data/intraday/lean) are XADDed to Redis Streams at high
speed; `stockpred-stream worker --predict` keeps their features as if the session closed now, scores them with the
champion the daily demo trained, and pushes refreshed predictions and alerts through the service's `GET /events`;
this script listens there as an analyst's client would, then asks `POST /predict`.

The daily history before the session is the real S&P 500 file's (../shared/data/market), ingested, validated and
featurized by the daily graph into a lake of its own (data/intraday-demo). The champion was trained on the simulated
market: these predictions show the plumbing, not forecast skill.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
MARKET, LEAN = SHARED / "market", SHARED / "intraday" / "lean"
SESSION, HISTORY_START, HISTORY_END = "2013-10-07", "2013-04-01", "2013-10-04"
TICKERS = ("AIG", "BAC", "IBM")
NEW_YORK = ZoneInfo("America/New_York")
EVERY_MINUTES = 60  # session minutes between two printed rows of the latest predictions
# Who gets told what (`worker --alert-rules`): a forecast that moved 1.5 basis points since the desk's last alert
# for it (or since the first one seen). No cool-down: it counts wall-clock seconds, and the replay is fast.
RULES = """\
subscriptions:
  - subscriber: demo-desk
    cooldown_s: 0
    rules:
      - {kind: change, threshold: 0.00015}
"""


def environment(data_dir: Path, redis_url: str) -> dict[str, str]:
    """The S&P 500 file through the files provider, a lake of its own, the daily demo's registry, a private Redis.
    Other STOCKPRED_* variables of the caller are left out: they could point the lake or the registry elsewhere."""
    sys.path.insert(0, str(ROOT))
    from stockpred_core.settings import load_settings

    daily = load_settings()  # the daily demo's settings: its registry holds the champion
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("STOCKPRED_")}
    return {
        **inherited,
        "STOCKPRED_ENV": "local",
        "STOCKPRED_DATA_DIR": str(data_dir),
        "STOCKPRED_PROVIDERS": "files",
        "STOCKPRED_FILES_PATH": str(MARKET / "all_stocks_5yr.csv.gz"),
        "STOCKPRED_UNIVERSE": ",".join(TICKERS),
        "STOCKPRED_INDEX_FILE": str(MARKET / "GSPC.csv"),
        "STOCKPRED_VIX_FILE": str(MARKET / "VIX_History.csv"),
        "STOCKPRED_MLFLOW_TRACKING_URI": daily.mlflow_tracking_uri,
        "STOCKPRED_REGISTERED_MODEL": daily.registered_model,
        **({"STOCKPRED_MLFLOW_ARTIFACTS": daily.mlflow_artifact_location}
           if daily.mlflow_artifact_location else {}),
        "STOCKPRED_REDIS_URL": redis_url,
        "STOCKPRED_MODEL_POLL_SECONDS": "5",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }  # fmt: skip


HISTORY = f"""
import sys, time
import dagster as dg
from stockpred_assets.definitions import defs
job = defs.resolve_job_def("daily_data_job")
# predictions and backtest_history score each day with the champion in force that week: none was in 2013
keys = [k for k in job.asset_layer.executable_asset_keys if k.path[-1] not in ("predictions", "backtest_history")]
tags = {{
    "dagster/asset_partition_range_start": "{HISTORY_START}", "dagster/asset_partition_range_end": "{HISTORY_END}"
}}
quiet = {{"loggers": {{"console": {{"config": {{"log_level": "ERROR"}}}}}}}}
result = job.execute_in_process(
    instance=dg.DagsterInstance.ephemeral(), run_config=quiet, tags=tags, asset_selection=keys, raise_on_error=False
)
for event in result.all_events:
    if event.is_step_failure:
        print(f"  {{event.step_key}} failed: {{event.event_specific_data.error.message.strip()}}", file=sys.stderr)
sys.exit(0 if result.success else 1)
"""


def history(env: dict[str, str], data_dir: Path) -> None:
    """daily_data_job's assets on the S&P file up to the session before (an ephemeral Dagster instance: the daily
    demo's runs stay as they are): raw bars, validated bars, features and the online features in Redis."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HISTORY], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"daily_data_job on the S&P 500 file failed:\n{(done.stderr or done.stdout)[-3000:]}")
    print(
        f"  history: daily_data_job on the S&P 500 file, {', '.join(TICKERS)} {HISTORY_START}..{HISTORY_END} -> "
        f"{data_dir.relative_to(ROOT)}: ok in {time.monotonic() - began:.0f}s"
    )


def listen(base: str, seen: list[dict], subscribed: threading.Event) -> None:
    """An analyst's client: the SSE feed of the three tickers (`event:`, `id:`, `data:` lines, a blank line ends an
    event; `: ping` comments are heartbeats), every event kept."""
    params = {"tickers": ",".join(TICKERS)}
    with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", f"{base}/events", params=params, timeout=None) as r:
        event: dict = {}
        for line in r.iter_lines():
            if line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("id:"):
                event["id"] = line[3:].strip()
            elif line.startswith("data:"):
                event["data"] = json.loads(line[5:])
            elif not line and "data" in event:
                if event.get("event") == "subscribed":
                    subscribed.set()
                else:
                    seen.append(event)
                event = {}


def clock(iso: str) -> str:
    """A bar time (ISO, UTC) as New York time."""
    return f"{dt.datetime.fromisoformat(iso).astimezone(NEW_YORK):%H:%M:%S}"


def table(latest: dict[str, dict]) -> str:
    """Each ticker's last price and predicted return, as last pushed."""
    cells = [latest.get(t) for t in TICKERS]
    return "".join(f"{p['last_close']:>10.2f} {p['prediction']:+.5f}" if p else f"{'-':>20}" for p in cells)


def stop(proc: subprocess.Popen) -> None:
    from stockpred_core.processes import stop_group

    with contextlib.suppress(ProcessLookupError):  # exited already
        stop_group(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3001, help="the prediction service's port for this part")
    parser.add_argument("--speed", type=float, default=2500, help="replay speed: N times real time")
    args = parser.parse_args()
    if not (LEAN / "second" / "ibm").is_dir() or not (MARKET / "all_stocks_5yr.csv.gz").is_file():
        sys.exit(f"the recorded data is not at {SHARED}: skipping the intraday demo")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the finally clause still stops the servers
    sys.path.insert(0, str(ROOT))
    from bento.harness.redis_server import start_redis
    from stockpred_core.processes import wait_for_http

    print("\nIntraday: a real recorded session replayed through the live path (scripts/demo_intraday.py)")
    work = Path(tempfile.mkdtemp(prefix="stockpred-intraday-"))
    data_dir = ROOT / "data" / "intraday-demo"
    shutil.rmtree(data_dir, ignore_errors=True)  # its own lake, rebuilt each time
    redis_proc, redis_url = start_redis(work)
    env = environment(data_dir, redis_url)
    rules = work / "rules.yaml"
    rules.write_text(RULES)
    stream_cli = str(Path(sys.executable).parent / "stockpred-stream")
    base = f"http://127.0.0.1:{args.port}"
    processes: list[subprocess.Popen] = []
    done = False
    try:
        history(env, data_dir)
        began = time.monotonic()
        service_log = work / "service.log"
        with service_log.open("w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "bentoml", "serve", "bento.service:StockPredictor", "--port", str(args.port)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
        with (work / "worker.log").open("w") as log:
            processes.append(subprocess.Popen(
                [stream_cli, "worker", "--predict", "--alert-rules", str(rules), "--block-ms", "50",
                 "--log-level", "WARNING"],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
        if not wait_for_http(f"{base}/readyz", processes[0], timeout=180, interval=0.5):
            sys.exit(f"the service did not become ready:\n{service_log.read_text()[-3000:]}")
        model = httpx.get(f"{base}/readyz", timeout=5).json()["model"] or {}
        print(
            f"  service: bentoml serve --port {args.port} on this lake and a private redis-server, ready in "
            f"{time.monotonic() - began:.0f}s\n  champion: {model.get('family')} v{model.get('version')}, the daily "
            "demo's (trained on the simulated market: this shows the plumbing, not forecast skill)\n"
        )
        print("$ stockpred-stream worker --predict --alert-rules rules.yaml   # rules: change 0.00015 (1.5 bp)")
        seen: list[dict] = []
        subscribed = threading.Event()
        threading.Thread(target=listen, args=(base, seen, subscribed), daemon=True).start()
        if not subscribed.wait(30):
            sys.exit("GET /events did not subscribe")
        print(f"$ curl -N '{base}/events?tickers={','.join(TICKERS)}'   # the client: Server-Sent Events")
        replay = [
            stream_cli, "replay", "--lean", os.path.relpath(LEAN, ROOT), "--date", SESSION,
            "--tickers", ",".join(TICKERS), "--resolution", "second", "--speed", f"{args.speed:g}",
        ]  # fmt: skip
        print(f"$ {' '.join(['stockpred-stream', *replay[1:]])}")
        print(
            f"\nThe session of {SESSION} (pre-market from 04:00, after hours to 20:00) at {args.speed:g}x, as the "
            f"client sees it:\n  {'New York':<10}"
            + "".join(f"{t:>20}" for t in TICKERS)
            + "   events   (last price, predicted return)"
        )
        began = time.monotonic()
        with (work / "replay.log").open("w") as log:
            feed = subprocess.Popen(
                replay, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
            )
        processes.append(feed)
        latest: dict[str, dict] = {}
        shown, next_row, last_seen = 0, None, (time.monotonic(), 0)
        while feed.poll() is None or time.monotonic() - last_seen[0] < 1.5:  # then the worker's last events
            if len(seen) != last_seen[1]:
                last_seen = (time.monotonic(), len(seen))
            while shown < len(seen):
                event, shown = seen[shown], shown + 1
                data = event["data"]
                if event.get("event") == "alert":
                    print(f"  {clock(data['as_of'])}  ALERT to {data['subscriber']} ({data['rule']}) {data['message']}")
                    continue
                latest.update({p["ticker"]: p for p in data.get("predictions", [])})
                at = dt.datetime.fromisoformat(data["as_of"]).astimezone(NEW_YORK)
                if next_row is None or at >= next_row:
                    print(f"  {at:%H:%M:%S}  {table(latest)}   {shown:>6}")
                    next_row = at.replace(minute=0, second=0) + dt.timedelta(minutes=EVERY_MINUTES)
            time.sleep(0.1)
        if feed.returncode != 0:
            sys.exit(f"the replay failed:\n{(work / 'replay.log').read_text()[-3000:]}")
        if latest:
            newest = max(p["feature_time"] for p in latest.values())
            print(f"  {clock(newest)}  {table(latest)}   {len(seen):>6}")
        progress = [json.loads(line) for line in feed.stdout.read().splitlines() if line.startswith("{")]
        alerts = sum(1 for e in seen if e.get("event") == "alert")
        print(
            f"Replayed {progress[-1]['bars'] if progress else 0:,} second bars in {last_seen[0] - began:.1f}s: "
            f"{len(seen) - alerts:,} prediction events and {alerts} alerts pushed to the client"
        )
        body = {"ticker": "IBM", "explain": False}
        print(f"\n$ curl -s -X POST {base}/predict -H 'Content-Type: application/json' -d '{json.dumps(body)}'")
        answer = httpx.post(f"{base}/predict", json=body, timeout=30).json()
        keys = ("ticker", "prediction", "last_close", "feature_date", "feature_time", "model_version", "cached")
        print(json.dumps({k: answer.get(k) for k in keys}, indent=2) + "   (some of its fields)")
        if answer.get("feature_time"):
            how = "cached by the worker at that refresh" if answer.get("cached") else "computed by the service"
            print(f"feature_time is IBM's newest bar, {clock(answer['feature_time'])} New York; the answer was {how}.")
        done = True
    finally:
        for proc in reversed(processes):
            stop(proc)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        if done:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"(the logs of the service, the worker and the replay are in {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
