"""Authentication and canary benchmark: the prediction service answering cache hits to API-key clients and to
OAuth2 bearer-token clients in one run, side by side; then the time a faulty canary takes to be rolled back.

    .venv/bin/python benchmarks/serving/auth.py       # about 3 minutes; needs redis-server on PATH

One service (the harness world: 2,000 tickers in Redis, a LightGBM champion, 1 worker unless --workers), trusting
an API key and a local token issuer (bento.harness.issuer: RSA 2048 keys, the JWKS over HTTP). Scenarios, open loop
on /predict cache hits, interleaved per round so background load hits them alike:
- `api key`: one key (SHA-256 lookup);
- `jwt`: 200 clients, each with its own RS256 token reused across its requests (the verified-token cache answers
  after each client's first request, as it does for clients that hold a token for its lifetime);
- `jwt, new token each request`: every request a token never seen (an RS256 signature check each: the worst case).
Each at --rate (below saturation: latency) and at --saturation-rate (achieved rps: throughput), --rounds times; the
throughput ratio to the API key is taken within each round (back to back, same background load), then its median.

Then the canary: the service again with STOCKPRED_CANARY_PERCENT=10 and a challenger that fails every request (it
takes a column the online features lack), offered --canary-rate requests/s from 200 token clients; printed: the
seconds from the first canary request to the rollback (audit log), the requests that failed (must be 0), and the
canary requests answered by the champion meanwhile. Writes benchmarks/serving/auth_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import median

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import loadgen  # noqa: E402
from run import open_loop  # noqa: E402

from bento.harness.issuer import Issuer  # noqa: E402
from bento.harness.process import serve  # noqa: E402
from bento.harness.redis_server import start_redis  # noqa: E402
from bento.harness.world import build_world, register, training_data  # noqa: E402
from stockpred_core.io.model_card import CHALLENGER_ALIAS  # noqa: E402
from stockpred_core.models.baselines import LinearForecaster  # noqa: E402

CLIENTS = 200
HOT = 500


def body_for(ticker: str) -> bytes:
    return b'{"ticker":"%s","explain":false}' % ticker.encode()


def bearer(issuer: Issuer, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token(subject=subject, lifetime=3600)}"}


def run(base: str, tickers: list[str], rate: float, duration: float, headers) -> loadgen.Result:
    """/predict for `tickers` in turn, open loop (the serving benchmark's runner)."""
    return open_loop(base, lambda i: body_for(tickers[i % len(tickers)]), rate, duration, headers)


def warm(base: str, tickers: list[str], headers: dict) -> None:
    run(base, tickers, 200, len(tickers) / 200, headers)  # every hot ticker answered once: cached


def auth_scenarios(args, work: Path, redis_url: str, issuer: Issuer) -> dict:
    env = {**issuer.env(), "STOCKPRED_SERVICE_WORKERS": str(args.workers)}
    world = build_world(work / "auth", args.tickers, redis_url, keys={"bench": ("admin", 1e9)}, extra_env=env)
    hot = world.features["ticker"].tolist()[:HOT]
    key = {"X-API-Key": world.keys["bench"]}
    held = [bearer(issuer, f"client-{c}") for c in range(CLIENTS)]
    # every request of the one-off scenario takes a token never sent before: as many as it sends, warm-up included
    fresh_needed = int(args.rate * 1.0 + args.rounds * (args.rate + args.saturation_rate) * args.duration) + 1
    started = time.perf_counter()
    fresh = iter([bearer(issuer, f"one-off-{i}") for i in range(fresh_needed)])
    print(f"{fresh_needed} one-off tokens signed in {time.perf_counter() - started:.1f} s", flush=True)
    scenarios = {
        "api key": lambda i: key,
        "jwt": lambda i: held[i % CLIENTS],
        "jwt, new token each request": lambda i: next(fresh),  # called once per request, in order
    }
    runs: list[dict] = []
    with serve(world.env, work / "auth.log") as base:
        warm(base, hot, key)
        for headers in scenarios.values():  # a warm-up each (tokens of every client verified once), not counted
            run(base, hot, args.rate, 1.0, headers)
        for round_ in range(args.rounds):
            for mode, rate in (("latency", args.rate), ("saturation", args.saturation_rate)):
                for name, headers in scenarios.items():
                    result = run(base, hot, rate, args.duration, headers)
                    runs.append({"scenario": name, "mode": mode, "round": round_ + 1, **result.summary()})
                    print(json.dumps(runs[-1]), flush=True)
    table = {}
    for name in scenarios:
        latency = [r for r in runs if r["scenario"] == name and r["mode"] == "latency"]
        saturated = [r for r in runs if r["scenario"] == name and r["mode"] == "saturation"]
        table[name] = {
            "p50_ms": median(r["p50_ms"] for r in latency),
            "p99_ms": median(r["p99_ms"] for r in latency),
            "saturation_rps": median(r["achieved_rps"] for r in saturated),
            "non_200": sum(
                sum(v for k, v in r["statuses"].items() if k != 200) + r["errors"]
                for r in runs
                if r["scenario"] == name
            ),
        }
    # the ratio within each round (the three ran back to back, under the same background load), then the median
    achieved = {(r["scenario"], r["round"]): r["achieved_rps"] for r in runs if r["mode"] == "saturation"}
    for name, row in table.items():
        ratios = [achieved[(name, k)] / achieved[("api key", k)] for k in range(1, args.rounds + 1)]
        row["rps_vs_api_key_per_round"] = [round(x, 3) for x in ratios]
        row["rps_vs_api_key"] = round(median(ratios), 3)
    return {"runs": runs, "table": table}


def canary_rollback(args, work: Path, redis_url: str, issuer: Issuer) -> dict:
    env = {
        **issuer.env(),
        "STOCKPRED_SERVICE_WORKERS": str(args.workers),
        "STOCKPRED_CANARY_PERCENT": "10",
    }
    world = build_world(work / "canary", args.tickers, redis_url, keys={"bench": ("admin", 1e9)}, extra_env=env)
    X, y = training_data(seed=5)
    X["ghost_feature"] = np.random.default_rng(0).normal(size=len(X))
    faulty = register(world.settings, LinearForecaster(alpha=1.0).fit(X, y), alias=CHALLENGER_ALIAS, example=X.head(3))
    hot = world.features["ticker"].tolist()[:HOT]
    tokens = [bearer(issuer, f"client-{c}") for c in range(CLIENTS)]
    with serve(world.env, work / "canary.log") as base:
        result = run(base, hot, args.canary_rate, args.canary_seconds, lambda i: tokens[i % CLIENTS])
    lines = [json.loads(line) for line in (world.root / "audit.log").read_text().splitlines() if line.strip()]
    rollbacks = [line for line in lines if line.get("event") == "canary_rollback"]
    fallbacks = [line for line in lines if line.get("canary_fallback")]
    out = {
        "offered_rps": args.canary_rate,
        "challenger_version": faulty,
        "load": result.summary(),
        "failed_requests": sum(v for k, v in result.statuses.items() if k != 200) + result.errors,
        "canary_requests_answered_by_the_champion": len(fallbacks),
        "rolled_back": bool(rollbacks),
    }
    if rollbacks and fallbacks:
        first = datetime.fromisoformat(fallbacks[0]["ts"]).timestamp() - fallbacks[0]["latency_ms"] / 1000
        out["rollback_seconds_after_first_canary_request"] = round(rollbacks[0]["ts"] - first, 2)
        out["reason"] = rollbacks[0]["reason"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=300, help="offered rps of the latency runs")
    parser.add_argument("--saturation-rate", type=float, default=2000, help="offered rps beyond capacity")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--canary-rate", type=float, default=200)
    parser.add_argument("--canary-seconds", type=float, default=10)
    parser.add_argument("--out", default=str(HERE / "auth_results.json"))
    args = parser.parse_args()
    loadgen.install_uvloop()
    work = Path(tempfile.mkdtemp(prefix="stockpred-auth-bench-"))
    redis_proc, redis_url = start_redis(work)
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}, "config": vars(args)}
    try:
        with Issuer() as issuer:
            results["auth"] = auth_scenarios(args, work, redis_url, issuer)
            results["canary"] = canary_rollback(args, work, redis_url.rsplit("/", 1)[0] + "/1", issuer)
    finally:
        redis_proc.terminate()
    results["machine"]["load_avg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'scenario':32} {'p50 ms':>8} {'p99 ms':>8} {'rps at saturation':>18} {'vs api key':>10} {'non-200':>8}")
    for name, row in results["auth"]["table"].items():
        print(
            f"{name:32} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['saturation_rps']:18.0f} "
            f"{row['rps_vs_api_key']:10.3f} {row['non_200']:8d}"
        )
    canary = results["canary"]
    print(
        f"\ncanary at 10%, faulty challenger, {canary['offered_rps']:g} rps offered: rolled back "
        f"{canary.get('rollback_seconds_after_first_canary_request')} s after its first request; "
        f"{canary['failed_requests']} failed client requests; {canary['canary_requests_answered_by_the_champion']} "
        f"canary requests answered by the champion"
    )
    print(f"load average {results['machine']['load_avg_start']} -> {results['machine']['load_avg_end']}")


if __name__ == "__main__":
    main()
