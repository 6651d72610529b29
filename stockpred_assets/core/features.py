"""The feature table: indicators and statistics per (date, ticker), built from validated bars.

One implementation used by the `features` asset, training and the prediction service.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockpred_assets.core import indicators as ind

# Sessions of history a feature for day D needs before D (EMA/Wilder warm-up included).
LOOKBACK_SESSIONS = 120

# Scale-free columns the models consume; the table also keeps raw indicator levels for analysts.
FEATURE_COLUMNS = [
    "ret_1",
    "ret_5",
    "ret_20",
    "log_ret_1",
    "volatility_20",
    "rsi_14",
    "macd_pct",
    "macd_hist_pct",
    "sma_10_gap",
    "sma_50_gap",
    "bb_pctb",
    "bb_width",
    "atr_pct",
    "volume_ratio_20",
]
RAW_COLUMNS = ["close", "adj_close", "sma_10", "sma_50", "ema_12", "ema_26", "macd", "macd_signal", "atr_14", "obv"]


def to_wide(bars: pd.DataFrame, column: str) -> pd.DataFrame:
    """A (date x ticker) frame of one bar column."""
    return bars.pivot(index="date", columns="ticker", values=column).sort_index()


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Long (date, ticker) feature table for every bar in `bars`; rows lacking warm-up history hold NaN."""
    if bars.empty:
        return pd.DataFrame(columns=["date", "ticker", *FEATURE_COLUMNS, *RAW_COLUMNS])
    close, adj = to_wide(bars, "close"), to_wide(bars, "adj_close")
    high, low, volume = to_wide(bars, "high"), to_wide(bars, "low"), to_wide(bars, "volume")
    log_ret = np.log(adj).diff()
    macd = ind.macd(close)
    bands = ind.bollinger(close)
    sma_10, sma_50, atr = ind.sma(close, 10), ind.sma(close, 50), ind.atr(high, low, close)
    columns = {
        "ret_1": adj.pct_change(1, fill_method=None),
        "ret_5": adj.pct_change(5, fill_method=None),
        "ret_20": adj.pct_change(20, fill_method=None),
        "log_ret_1": log_ret,
        "volatility_20": log_ret.rolling(20, min_periods=20).std() * np.sqrt(252),
        "rsi_14": ind.rsi(close),
        "macd_pct": macd["macd"] / close,
        "macd_hist_pct": macd["macd_hist"] / close,
        "sma_10_gap": close / sma_10 - 1.0,
        "sma_50_gap": close / sma_50 - 1.0,
        "bb_pctb": bands["bb_pctb"],
        "bb_width": bands["bb_width"],
        "atr_pct": atr / close,
        "volume_ratio_20": volume / ind.sma(volume, 20),
        "close": close,
        "adj_close": adj,
        "sma_10": sma_10,
        "sma_50": sma_50,
        "ema_12": ind.ema(close, 12),
        "ema_26": ind.ema(close, 26),
        "macd": macd["macd"],
        "macd_signal": macd["macd_signal"],
        "atr_14": atr,
        "obv": ind.obv(close, volume),
    }
    long = pd.concat({name: frame.stack(future_stack=True) for name, frame in columns.items()}, axis=1)
    long = long[long["close"].notna()].reset_index()
    return long[["date", "ticker", *FEATURE_COLUMNS, *RAW_COLUMNS]].sort_values(["date", "ticker"], ignore_index=True)


def latest_per_ticker(features: pd.DataFrame) -> pd.DataFrame:
    """The most recent complete feature row of each ticker (the online feature vector)."""
    complete = features.dropna(subset=FEATURE_COLUMNS)
    return (
        complete.sort_values("date").groupby("ticker", as_index=False).tail(1).sort_values("ticker", ignore_index=True)
    )
