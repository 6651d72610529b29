"""The incremental standard set (`IncrementalIndicators.update`) beside the batch `indicator_set` recomputing the
same update from the full history.

    .venv/bin/python benchmarks/incremental_features.py [--tickers 1000 10000] [--history 250] [--batches 200]

For each universe size: a seeded random walk (OHLC around the close, integer volumes, 3% of the bars missing) of
`--history` rows warm-starts the state (`from_history`, timed), then `--batches` updates each advance every ticker by
one bar (tickers shuffled per batch, as a stream delivers them). Printed: bar updates per second and the time of one
batch of bars; the batch implementation's time to produce the same newest values (`indicator_set` on history + 1
rows, best of --repeat), and the largest difference between the two on that row. numba runs single-threaded and
nothing else is parallel, so both sides use one core; compilation is excluded (one untimed call first). The load
average is printed before and after, since the machine is shared.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stockpred_core.features.incremental import IncrementalIndicators
from stockpred_core.features.indicators import indicator_set


def random_walk(rows: int, tickers: int, seed: int = 0) -> list[np.ndarray]:
    """high, low, close, volume (rows x tickers); 3% of the bars missing (all four fields)."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.015, (rows, tickers)), axis=0))
    high = close * (1 + rng.uniform(0, 0.01, close.shape))
    low = close * (1 - rng.uniform(0, 0.01, close.shape))
    volume = rng.integers(0, 100_000, close.shape).astype(np.float64)
    missing = rng.random(close.shape) < 0.03
    for a in (high, low, close, volume):
        a[missing] = np.nan
    return [high, low, close, volume]


def run(tickers: int, history: int, batches: int, repeat: int) -> dict[str, float]:
    bars = random_walk(history + batches, tickers)
    names = [f"T{i:05d}" for i in range(tickers)]
    frames = [pd.DataFrame(a[:history], columns=names) for a in bars]
    IncrementalIndicators.from_history(*(f.iloc[:60, :2] for f in frames))  # compile (or load numba's cache)
    start = time.perf_counter()
    inc = IncrementalIndicators.from_history(*frames)
    warm_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    spent, updated = 0.0, 0
    for r in range(history, history + batches):
        rows = rng.permutation(tickers)
        inputs = [a[r, rows] for a in bars]
        start = time.perf_counter()
        out = inc.update(rows, *inputs)
        spent += time.perf_counter() - start
        updated += len(rows)
    # The batch's answer for the last update: the indicators on every row so far, of which the newest row is used.
    full = [pd.DataFrame(a, columns=names) for a in bars]
    recompute = []
    for _ in range(repeat):
        start = time.perf_counter()
        batch = indicator_set(*full)
        recompute.append(time.perf_counter() - start)
    newest = np.column_stack([batch[n].iloc[-1].to_numpy()[rows] for n in inc.names])
    diff = np.nanmax(np.abs(out - newest)) if np.isfinite(newest).any() else 0.0
    same_nan = bool((np.isnan(out) == np.isnan(newest)).all())
    return {
        "warm_s": warm_s,
        "per_s": updated / spent,
        "batch_ms": 1e3 * spent / batches,
        "recompute_s": min(recompute),
        "diff": float(diff),
        "same_nan": same_nan,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--history", type=int, default=250)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"history {args.history} rows, {args.batches} batches of one bar per ticker")
    header = "tickers  warm start s  updates/s     ms/batch  batch recompute s  recompute/batch  max |diff|  NaN same"
    print(header)
    for tickers in args.tickers:
        r = run(tickers, args.history, args.batches, args.repeat)
        speedup = r["recompute_s"] * 1e3 / r["batch_ms"]
        print(
            f"{tickers:7d}  {r['warm_s']:12.3f}  {r['per_s']:12,.0f}  {r['batch_ms']:8.3f}  {r['recompute_s']:17.3f}"
            f"  {speedup:14,.0f}x  {r['diff']:10.1e}  {r['same_nan']}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
