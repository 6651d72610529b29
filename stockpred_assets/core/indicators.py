"""Technical indicators on wide frames (index: session date, columns: tickers), vectorized across tickers.

Smoothed indicators are seeded the way TA-Lib seeds them (a simple average of the first `n` values, then
exponential/Wilder smoothing), so after their warm-up they agree with TA-Lib. Every value at row D uses rows <= D only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def sma(x: pd.DataFrame, n: int) -> pd.DataFrame:
    return x.rolling(n, min_periods=n).mean()


def _seeded_ewm(x: pd.DataFrame, n: int, alpha: float) -> pd.DataFrame:
    """Exponential smoothing seeded with the SMA of each column's first `n` valid values."""
    count = x.notna().cumsum()
    seed = x.rolling(n, min_periods=n).mean().where(count == n)
    started = x.where(count > n, seed)
    return started.ewm(alpha=alpha, adjust=False, ignore_na=True).mean().where(count >= n)


def ema(x: pd.DataFrame, n: int) -> pd.DataFrame:
    return _seeded_ewm(x, n, 2.0 / (n + 1))


def wilder(x: pd.DataFrame, n: int) -> pd.DataFrame:
    return _seeded_ewm(x, n, 1.0 / n)


def rsi(close: pd.DataFrame, n: int = 14) -> pd.DataFrame:
    delta = close.diff()
    gain = wilder(delta.clip(lower=0.0), n)
    loss = wilder((-delta).clip(lower=0.0), n)
    total = gain + loss
    return (100.0 * gain / total).where(total > 0, 50.0).where(gain.notna())


def macd(close: pd.DataFrame, fast: int = 12, slow: int = 26, signal: int = 9) -> dict[str, pd.DataFrame]:
    """MACD as TA-Lib computes it: both EMAs start on the slow EMA's first bar, all outputs once the signal has."""
    if fast >= slow:
        raise ValueError(f"MACD needs fast < slow, got fast={fast}, slow={slow}")
    count = close.notna().cumsum()
    fast_ema = ema(close.where(count > slow - fast), fast)
    line = fast_ema - ema(close, slow)
    sig = ema(line, signal)
    line = line.where(sig.notna())
    return {"macd": line, "macd_signal": sig, "macd_hist": line - sig}


def true_range(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    prev = close.shift(1)
    ranges = np.maximum(high - low, np.maximum((high - prev).abs(), (low - prev).abs()))
    return pd.DataFrame(ranges, index=close.index, columns=close.columns).where(prev.notna())


def atr(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame, n: int = 14) -> pd.DataFrame:
    return wilder(true_range(high, low, close), n)


def bollinger(close: pd.DataFrame, n: int = 20, k: float = 2.0) -> dict[str, pd.DataFrame]:
    middle = sma(close, n)
    spread = k * close.rolling(n, min_periods=n).std(ddof=0)
    upper, lower = middle + spread, middle - spread
    return {
        "bb_middle": middle,
        "bb_upper": upper,
        "bb_lower": lower,
        "bb_pctb": (close - lower) / (upper - lower),
        "bb_width": (upper - lower) / middle,
    }


def obv(close: pd.DataFrame, volume: pd.DataFrame) -> pd.DataFrame:
    direction = np.sign(close.diff()).fillna(0.0)
    return (direction * volume).cumsum().where(close.notna())
