"""Technical indicators on wide frames (index: session date, columns: tickers), computed for every ticker at once.

Each indicator is TA-Lib's algorithm (same seeding, same zero tests, same running totals, same operation order), run on
every ticker's own valid rows: a ticker that lists late, misses a day or stops trading is computed exactly as TA-Lib
run on that ticker's rows, and the results are put back on the frame's dates. Warm-up rows and missing rows are NaN.
Every value at row D uses rows <= D only. A row is valid for an indicator when all of its inputs are present.

The loops are numba kernels (one pass per ticker, like TA-Lib's C) in `features/kernels/`, one module per family.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockpred_core.features.kernels.panel import (
    ADX,
    ATR,
    BBANDS,
    CMF,
    EMA,
    MACD,
    OBV,
    RSI,
    SMA,
    STANDARD,
    STANDARD_SET,
    STOCH,
    TRANGE,
    run_panel,
)


def _run(code: int, frames: list[pd.DataFrame], names: list[str], *params: float) -> dict[str, pd.DataFrame]:
    """Indicator `code` for every ticker of the aligned wide `frames`; outputs on the first frame's grid."""
    like = frames[0]
    inputs = np.empty((like.shape[1], len(frames), like.shape[0]))
    for i, frame in enumerate(frames):
        np.copyto(inputs[:, i], _aligned(frame, like).to_numpy(dtype=np.float64).T)
    out = np.full((like.shape[1], len(names), like.shape[0]), np.nan)
    run_panel(code, inputs, np.asarray(params, dtype=np.float64), out)
    return {name: pd.DataFrame(out[:, o].T, index=like.index, columns=like.columns) for o, name in enumerate(names)}


def _aligned(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    if frame.index.equals(like.index) and frame.columns.equals(like.columns):
        return frame
    return frame.reindex(index=like.index, columns=like.columns)


def _period(n: int) -> int:
    if n < 1:
        raise ValueError(f"an indicator period must be at least 1, got {n}")
    return n


def sma(x: pd.DataFrame, n: int) -> pd.DataFrame:
    """Simple moving average of the last n valid rows (TA-Lib SMA)."""
    return _run(SMA, [x], ["sma"], _period(n))["sma"]


def ema(x: pd.DataFrame, n: int) -> pd.DataFrame:
    """Exponential moving average, k = 2/(n+1), seeded with the SMA of the first n values (TA-Lib EMA)."""
    return _run(EMA, [x], ["ema"], _period(n), 2.0 / (n + 1))["ema"]


def wilder(x: pd.DataFrame, n: int) -> pd.DataFrame:
    """Wilder's smoothing (k = 1/n) seeded with the SMA of the first n values."""
    return _run(EMA, [x], ["ema"], _period(n), 1.0 / n)["ema"]


def rsi(close: pd.DataFrame, n: int = 14) -> pd.DataFrame:
    """Wilder's RSI (TA-Lib RSI); 0 while the price has not moved, as TA-Lib answers."""
    return _run(RSI, [close], ["rsi"], _period(n))["rsi"]


def macd(close: pd.DataFrame, fast: int = 12, slow: int = 26, signal: int = 9) -> dict[str, pd.DataFrame]:
    """MACD line, signal and histogram (TA-Lib MACD); all three start once the signal has."""
    if fast >= slow:
        raise ValueError(f"MACD needs fast < slow, got fast={fast}, slow={slow}")
    return _run(MACD, [close], ["macd", "macd_signal", "macd_hist"], _period(fast), slow, _period(signal))


def stochastic(
    high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, fastk: int = 14, slowk: int = 3, slowd: int = 3
) -> dict[str, pd.DataFrame]:
    """Slow stochastic %K and %D (TA-Lib STOCH with SMA smoothing); both start once %D has."""
    return _run(STOCH, [high, low, close], ["stoch_k", "stoch_d"], _period(fastk), _period(slowk), _period(slowd))


def adx(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, n: int = 14) -> dict[str, pd.DataFrame]:
    """Wilder's ADX (from a ticker's row 2n-1) with +DI and -DI (from row n): TA-Lib ADX, PLUS_DI, MINUS_DI."""
    return _run(ADX, [high, low, close], ["adx", "plus_di", "minus_di"], _period(n))


def true_range(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    """True range (TA-Lib TRANGE); NaN on a ticker's first row, which has no previous close."""
    return _run(TRANGE, [high, low, close], ["tr"])["tr"]


def atr(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, n: int = 14) -> pd.DataFrame:
    """Average true range: Wilder's smoothing of the true range (TA-Lib ATR)."""
    return _run(ATR, [high, low, close], ["atr"], _period(n))["atr"]


def bollinger(close: pd.DataFrame, n: int = 20, k: float = 2.0) -> dict[str, pd.DataFrame]:
    """Bollinger Bands on the SMA with population std (TA-Lib BBANDS), plus %b and width (NaN for flat bands)."""
    return _run(BBANDS, [close], ["bb_middle", "bb_upper", "bb_lower", "bb_pctb", "bb_width"], _period(n), k)


def obv(close: pd.DataFrame, volume: pd.DataFrame) -> pd.DataFrame:
    """On-balance volume (TA-Lib OBV): starts at the first valid row's volume."""
    return _run(OBV, [close, volume], ["obv"])["obv"]


def cmf(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, volume: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """Chaikin Money Flow over n rows; a row with high == low has no money flow, a window without volume is NaN."""
    return _run(CMF, [high, low, close, volume], ["cmf"], _period(n))["cmf"]


def indicator_set(
    high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, volume: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The standard set (STANDARD_SET: RSI 14, MACD 12/26/9, STOCH 14/3/3, SMA 10/20/50, EMA 12/26, ADX 14 with DI,
    BBANDS 20/2, ATR 14, OBV, CMF 20) in one pass per ticker, equal to the single-indicator functions on the rows where
    all four inputs are present (a row missing any of them is left out of every indicator)."""
    return _run(STANDARD, [high, low, close, volume], STANDARD_SET)
