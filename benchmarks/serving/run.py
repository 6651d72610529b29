"""Serving benchmark: the prediction service against a bare BentoML endpoint, in one run, on loopback.

    .venv/bin/python benchmarks/serving/run.py            # about 4 minutes; needs redis-server on PATH

    .venv/bin/python benchmarks/serving/run.py --saturation-only --timer-fix off   # what bento/patches.py is worth

Starts a private redis-server, builds a synthetic world (20,000 tickers of online features in Redis and the lake, a
100-tree LightGBM champion in a local MLflow registry), then serves, each with the same number of workers (2):
- `bare`: benchmarks/serving/bare_service.py, a BentoML JSON endpoint that does nothing (with the service's fix to
  BentoML's request-timeout timers, bento/patches.py, so the ratios measure what stockpred adds);
- `stockpred`: bento/service.py with an API key, the Redis rate limit, the Redis cache and the audit log on.
Scenarios (open loop, see loadgen.py), interleaved per offered rate so background load hits them alike:
bare; /predict on cache hits (a hot set of 1,000 tickers cached with explanations beforehand); /predict on misses
(every request a ticker not cached yet, explained: TreeSHAP per row). Then the saturation throughput of bare and hits
(a 2 s warm-up each, then alternated, 3 rounds), a Zipf ticker mix from a cold cache (two 20 s windows; and the
hit rate an hour of that mix would get), and /predict_batch with 1,000 and 10,000 tickers (cold and warm, median of
5). Prints a table and writes the figures to benchmarks/serving/results.json. The redis-server, the world and the
servers come from the service's harness (bento.harness), as in the service tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import loadgen  # noqa: E402

from bento.harness.process import serve  # noqa: E402
from bento.harness.redis_server import start_redis  # noqa: E402
from bento.harness.world import build_world, fit, online_frame  # noqa: E402

HOT = 1_000
ROUNDS = 100  # trees of the synthetic champion


def body_for(ticker: str) -> bytes:
    return b'{"ticker":"%s"}' % ticker.encode()


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def flush(base: str, admin: dict) -> None:
    httpx.post(f"{base}/admin/cache/flush", json={}, headers=admin, timeout=60).raise_for_status()


def open_loop(base: str, bodies, rate: float, duration: float, headers=None, keep_bodies=False) -> loadgen.Result:
    return asyncio.run(
        loadgen.open_loop(
            "127.0.0.1",
            port_of(base),
            "/predict",
            bodies,
            rate,
            duration,
            headers=headers,
            keep_bodies=keep_bodies,
        )
    )


def batch_latency(base: str, tickers: list[str], headers: dict, explain: bool) -> tuple[float, int]:
    body = json.dumps({"tickers": tickers, "explain": explain}).encode()
    status, data, ms = asyncio.run(loadgen.one_request("127.0.0.1", port_of(base), "/predict_batch", body, headers))
    if status != 200:
        raise RuntimeError(f"batch of {len(tickers)} answered {status}: {data[:300]!r}")
    return ms, json.loads(data)["cache_hits"]


def raw_predict_ms() -> float:
    """Best of 5: the champion's booster on 10,000 rows (a C-ordered matrix), the floor of any batch answer."""
    model = fit("lightgbm", rounds=ROUNDS)
    frame = online_frame(10_000)
    matrix = np.ascontiguousarray(frame[model.feature_names].to_numpy(dtype=float))
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        model.booster.predict(matrix)
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=20_000)
    parser.add_argument("--rates", default="200,500,1000")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per open-loop run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--saturation-rate", type=float, default=2500, help="offered rps beyond capacity")
    parser.add_argument("--saturation-seconds", type=float, default=5.0)
    parser.add_argument("--saturation-rounds", type=int, default=3)
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the ticker mix")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument(
        "--timer-fix", choices=("on", "off"), default="on", help="off: both servers without bento/patches.py's fix"
    )
    parser.add_argument("--saturation-only", action="store_true", help="only the bare/hits saturation rounds")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    loadgen.install_uvloop()
    work = Path(tempfile.mkdtemp(prefix="stockpred-bench-"))
    redis_proc, redis_url = start_redis(work)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_start": os.getloadavg()},
        "config": vars(args),
    }
    try:
        started = time.monotonic()
        world = build_world(
            work / "world",
            args.tickers,
            redis_url,
            rounds=ROUNDS,
            keys={"bench": ("admin", 1e9)},
            extra_env={"STOCKPRED_SERVICE_WORKERS": str(args.workers), "STOCKPRED_MAX_EXPLAIN_TICKERS": str(HOT)},
        )
        print(f"world: {args.tickers} tickers, champion registered ({time.monotonic() - started:.0f} s)", flush=True)
        results["raw_predict_10k_ms"] = raw_predict_ms()
        print(f"reference: the champion's raw LightGBM predict of 10,000 rows: {results['raw_predict_10k_ms']} ms")
        headers = {"X-API-Key": world.keys["bench"]}
        tickers = world.features["ticker"].tolist()
        bare_env = {"BARE_WORKERS": str(args.workers), "BARE_TIMER_FIX": args.timer_fix}
        target = "bento.service:StockPredictor" if args.timer_fix == "on" else "unpatched_service:StockPredictor"
        with (
            serve(bare_env, work / "bare.log", target="bare_service:Bare", cwd=HERE) as bare,
            serve(
                world.env,
                work / "stockpred.log",
                target=target,
                cwd=HERE.parents[1] if args.timer_fix == "on" else HERE,
            ) as svc,
        ):
            hot = tickers[:HOT]
            results["runs"] = runs = []
            for rate in [] if args.saturation_only else rates:
                n = int(rate * args.duration)
                for name, base, make, hdrs in (
                    ("bare", bare, lambda i: body_for(hot[i % HOT]), None),
                    ("hits", svc, lambda i: body_for(hot[i % HOT]), headers),
                    ("misses", svc, None, headers),
                ):
                    if name == "hits":
                        batch_latency(svc, hot, headers, explain=True)  # the hot set, cached with explanations
                        time.sleep(1.0)  # the cache writes follow the answer
                    if name == "misses":
                        flush(svc, headers)
                        offset = int(rate) % 7
                        fresh = tickers[HOT + offset : HOT + offset + n]
                        make = lambda i, fresh=fresh: body_for(fresh[i])  # noqa: E731
                    result = open_loop(base, make, rate, args.duration, hdrs)
                    runs.append({"scenario": name, **result.summary()})
                    print(json.dumps(runs[-1]), flush=True)
            batch_latency(svc, hot, headers, explain=True)
            time.sleep(1.0)
            for base, hdrs in ((bare, None), (svc, headers)):  # a warm-up at saturation each, not counted
                open_loop(base, lambda i: body_for(hot[i % HOT]), args.saturation_rate, 2.0, hdrs)
            for round_ in range(args.saturation_rounds):  # alternated, so background load hits both alike
                for name, base, hdrs in (("bare", bare, None), ("hits", svc, headers)):
                    result = open_loop(
                        base, lambda i: body_for(hot[i % HOT]), args.saturation_rate, args.saturation_seconds, hdrs
                    )
                    runs.append({"scenario": f"{name} (saturation {round_ + 1})", **result.summary()})
                    print(json.dumps(runs[-1]), flush=True)
            ratios = [
                hit["achieved_rps"] / bare_run["achieved_rps"]
                for bare_run, hit in zip(
                    [r for r in runs if r["scenario"].startswith("bare (saturation")],
                    [r for r in runs if r["scenario"].startswith("hits (saturation")],
                    strict=True,
                )
            ]
            results["hits_vs_bare_throughput"] = {"ratios": [round(r, 3) for r in ratios], "median": median(ratios)}
            if args.saturation_only:
                hits = [r["achieved_rps"] for r in runs if r["scenario"].startswith("hits (saturation")]
                bares = [r["achieved_rps"] for r in runs if r["scenario"].startswith("bare (saturation")]
                print(
                    f"timer fix {args.timer_fix}: hits rps {hits} (median {median(hits):.0f}), bare rps {bares} "
                    f"(median {median(bares):.0f}), ratios {results['hits_vs_bare_throughput']}, "
                    f"load {os.getloadavg()}",
                    flush=True,
                )
                return

            flush(svc, headers)
            rng = np.random.default_rng(7)
            results["zipf"] = []
            for window in ("cold cache", "warm (next 20 s)"):  # the second window continues with the first's cache
                draws = rng.zipf(args.zipf, size=500 * 20)
                mix = [tickers[(d - 1) % len(tickers)] for d in draws]
                result = open_loop(svc, lambda i, mix=mix: body_for(mix[i]), 500, 20, headers, keep_bodies=True)
                hits = sum(b.startswith(b'{"cached":true') for b in result.bodies)
                results["zipf"].append(
                    {
                        "window": window,
                        "exponent": args.zipf,
                        "distinct_tickers": len(set(mix)),
                        "hit_rate": round(hits / max(1, result.completed), 4),
                        **result.summary(),
                    }
                )
                print(json.dumps(results["zipf"][-1]), flush=True)
            # What an hour of the same mix at 500 rps would hit with the 1 h TTL (features change once a day):
            # every draw after a ticker's first is a hit.
            hour = rng.zipf(args.zipf, size=500 * 3600) - 1
            distinct = len(np.unique(hour % len(tickers)))
            results["zipf_hour_hit_rate"] = round(1 - distinct / len(hour), 4)

            results["batches"] = batches = []
            for size, explain in ((1_000, False), (1_000, True), (10_000, False)):
                cold, warm = [], []
                for _ in range(5):
                    flush(svc, headers)
                    cold.append(batch_latency(svc, tickers[:size], headers, explain)[0])
                    time.sleep(0.5)  # the cache writes finish after the answer
                    warm.append(batch_latency(svc, tickers[:size], headers, explain)[0])
                batches.append(
                    {
                        "tickers": size,
                        "explain": explain,
                        "cold_ms_median": round(float(np.median(cold)), 1),
                        "cold_ms_max": round(max(cold), 1),
                        "warm_ms_median": round(float(np.median(warm)), 1),
                        "warm_ms_max": round(max(warm), 1),
                    }
                )
                print(json.dumps(batches[-1]), flush=True)
        results["machine"]["load_avg_end"] = os.getloadavg()
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print_table(results)
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def print_table(results: dict) -> None:
    print("\nscenario               offered rps  achieved rps    p50 ms    p99 ms  errors  non-200")
    for run in results["runs"]:
        non_200 = sum(v for k, v in run["statuses"].items() if int(k) != 200)
        print(
            f"{run['scenario']:<22} {run['offered_rps']:>11.0f} {run['achieved_rps']:>13.1f} "
            f"{run['p50_ms']:>9.2f} {run['p99_ms']:>9.2f} {run['errors']:>7} {non_200:>8}"
        )
    ratio = results["hits_vs_bare_throughput"]
    print(f"\ncache-hit throughput / bare throughput at saturation: {ratio['ratios']}, median {ratio['median']:.2f}")
    for z in results["zipf"]:
        print(
            f"\nZipf({z['exponent']}) ticker mix, 500 rps x 20 s, {z['window']}: hit rate {z['hit_rate']:.1%} "
            f"({z['distinct_tickers']} distinct tickers), achieved {z['achieved_rps']:.0f} rps, "
            f"p50 {z['p50_ms']:.2f} ms, p99 {z['p99_ms']:.2f} ms"
        )
    print(f"expected over 1 h of the same mix at 500 rps (TTL 1 h): hit rate {results['zipf_hour_hit_rate']:.1%}")
    print("\n/predict_batch           cold median (max) ms   warm median (max) ms")
    for b in results["batches"]:
        label = f"{b['tickers']:,} tickers{' + explain' if b['explain'] else ''}"
        print(
            f"{label:<24} {b['cold_ms_median']:>10.1f} ({b['cold_ms_max']:.1f}) "
            f"{b['warm_ms_median']:>14.1f} ({b['warm_ms_max']:.1f})"
        )
    print(f"\nraw LightGBM predict of 10,000 rows (the champion, best of 5): {results['raw_predict_10k_ms']} ms")
    print(f"load average at start {results['machine']['load_avg_start']}, end {results['machine']['load_avg_end']}")


if __name__ == "__main__":
    main()
