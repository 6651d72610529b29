"""The indicator set for many tickers at once, beside TA-Lib computing the same indicators ticker by ticker.

    .venv/bin/python benchmarks/indicators.py

Set: RSI 14, MACD 12/26/9, STOCH 14/3/3 (SMA), SMA 10/20/50, EMA 12/26, ADX 14 with +DI/-DI, BBANDS 20/2, ATR 14, OBV
and CMF 20. TA-Lib has no CMF: its side computes ADOSC 3/10 (Chaikin's A/D oscillator, the same money-flow term) in its
place. Data: (a) the real S&P 500 file, 505 tickers x 1,259 sessions, the 11 rows missing open/high/low dropped; (b)
simulate_bars(seed=7, universe_size=10000) over 504 sessions. Preparing the inputs (reading, simulating, wide frames for
ours, one array per ticker and field for TA-Lib) is not timed. Both sides keep their results, so both pay for the memory
those take. Each time is the best of REPEAT runs after one warm-up run; ours is timed two ways: `indicator_set` (one
pass per ticker) and one public function per indicator. The first call of a process (numba loading its compiled code
from the on-disk cache, or compiling it when there is none) is measured apart, in fresh processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import talib
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stockpred_core.data import calendar  # noqa: E402
from stockpred_core.data.simulation import simulate_bars  # noqa: E402
from stockpred_core.features import indicators as ind  # noqa: E402

SP500 = ROOT.parent / "shared" / "data" / "market" / "all_stocks_5yr.csv.gz"
FIELDS = ["high", "low", "close", "volume"]
REPEAT = 5


def sp500_bars() -> pd.DataFrame:
    raw = pd.read_csv(SP500, parse_dates=["date"]).rename(columns={"Name": "ticker"})
    return raw.dropna(subset=["open", "high", "low", "close"])


def simulated_bars() -> pd.DataFrame:
    return simulate_bars(seed=7, universe_size=10_000, start="2022-01-03", end=calendar.add_sessions("2022-01-03", 503))


def talib_set(series: list[tuple[np.ndarray, ...]]) -> list[tuple]:
    """TA-Lib, ticker by ticker, on each ticker's own rows."""
    return [
        (
            talib.RSI(c, 14),
            talib.MACD(c, 12, 26, 9),
            talib.STOCH(h, lo, c, 14, 3, 0, 3, 0),
            *(talib.SMA(c, n) for n in (10, 20, 50)),
            *(talib.EMA(c, n) for n in (12, 26)),
            talib.ADX(h, lo, c, 14),
            talib.PLUS_DI(h, lo, c, 14),
            talib.MINUS_DI(h, lo, c, 14),
            talib.BBANDS(c, 20, 2.0, 2.0, 0),
            talib.ATR(h, lo, c, 14),
            talib.OBV(c, v),
            talib.ADOSC(h, lo, c, v, 3, 10),
        )
        for h, lo, c, v in series
    ]


def functions_set(h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame, v: pd.DataFrame) -> list:
    """Ours, one public function per indicator."""
    return [
        ind.rsi(c, 14),
        ind.macd(c, 12, 26, 9),
        ind.stochastic(h, lo, c, 14, 3, 3),
        *(ind.sma(c, n) for n in (10, 20, 50)),
        *(ind.ema(c, n) for n in (12, 26)),
        ind.adx(h, lo, c, 14),
        ind.bollinger(c, 20, 2.0),
        ind.atr(h, lo, c, 14),
        ind.obv(c, v),
        ind.cmf(h, lo, c, v, 20),
    ]


def best_time(run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - began)
        del result
    return min(times)


def measure(name: str, bars: pd.DataFrame) -> list:
    wide = [bars.pivot(index="date", columns="ticker", values=f).sort_index().astype(float) for f in FIELDS]
    series = [tuple(g[f].to_numpy(dtype=float) for f in FIELDS) for _, g in bars.sort_values("date").groupby("ticker")]
    talib_s = best_time(lambda: talib_set(series))
    set_s = best_time(lambda: ind.indicator_set(*wide))
    functions_s = best_time(lambda: functions_set(*wide))
    shape = f"{wide[0].shape[1]:,} x {wide[0].shape[0]:,}"
    return [name, shape, talib_s, set_s, set_s / talib_s, functions_s, functions_s / talib_s]


FIRST_CALL = """
import time
began = time.perf_counter()
import numpy as np, pandas as pd
from stockpred_core.features import indicators as ind
x = pd.DataFrame(np.linspace(1.0, 2.0, 300).reshape(60, 5))
ind.indicator_set(x + 1, x, x + 0.5, x * 1000)
ind.sma(x, 5)
print(time.perf_counter() - began)
"""


def first_call(cache_dir: str | None) -> float:
    """Import plus a first call in a fresh process: from numba's on-disk cache, or compiling into an empty one."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    done = subprocess.run([sys.executable, "-c", FIRST_CALL], cwd=ROOT, env=env, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = [measure("S&P 500 file", sp500_bars()), measure("simulated", simulated_bars())]
    headers = ["data", "tickers x sessions", "TA-Lib s", "indicator_set s", "ratio", "per-function s", "ratio"]
    print(tabulate(rows, headers=headers, floatfmt=".3f"))
    first_call(None)  # make sure the default cache holds the compiled code
    with tempfile.TemporaryDirectory() as empty:
        print(
            f"\nfirst call in a fresh process (import included): {first_call(None):.2f} s with numba's cache, "
            f"{first_call(empty):.2f} s compiling from scratch"
        )


if __name__ == "__main__":
    main()
