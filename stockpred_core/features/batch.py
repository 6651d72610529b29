"""The feature table: indicators, statistics and market context per (date, ticker), built from adjusted bars.

One implementation used by the `features` asset, training and the prediction service. Every value for day D uses
bars (and index/VIX values) dated D or earlier; cross-sectional ranks and z-scores use only day D's cross-section.
Warm-up values are NaN. The columns and their definitions are the registry's (`stockpred_core/features/catalog.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stockpred_core.features import alpha
from stockpred_core.features import indicators as ind
from stockpred_core.features.catalog import (
    FEATURE_COLUMNS,
    FEATURE_SET_VERSION,
    LIBRARY_COLUMNS,
    RAW_COLUMNS,
    REGISTRY,
    REQUIRED_FEATURES,
)

# Sessions of history read before day D: enough that D's features no longer depend on where the history starts (a
# daily run equals a backfill). ADX's double Wilder smoothing fades slowest, ~100 x (m/14) x (13/14)^m after m sessions;
# on the S&P 500 file the largest difference is 1.5e-9 with 400 sessions, 7e-11 with 450, 7e-12 (rounding) with 500.
LOOKBACK_SESSIONS = 500
RANKED = [spec.name[: -len("_rank")] for spec in REGISTRY if spec.name.endswith("_rank")]
TABLE_COLUMNS = ["date", "ticker", *FEATURE_COLUMNS, *RAW_COLUMNS, *LIBRARY_COLUMNS, "feature_set_version"]

__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_SET_VERSION",
    "LOOKBACK_SESSIONS",
    "RAW_COLUMNS",
    "MarketContext",
    "compute_features",
    "latest_per_ticker",
    "to_wide",
]


@dataclass(frozen=True)
class MarketContext:
    """What the bars alone do not say: a market index, the VIX and each ticker's sector (all optional)."""

    index_close: pd.Series | None = None  # by session date
    vix: pd.Series | None = None  # by session date
    sectors: dict[str, str] = field(default_factory=dict)


def to_wide(bars: pd.DataFrame, column: str) -> pd.DataFrame:
    """A (date x ticker) frame of one bar column."""
    return bars.pivot(index="date", columns="ticker", values=column).sort_index()


def _rolling_corr_cov(x: pd.DataFrame, m: pd.DataFrame | pd.Series, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rolling covariance of each column of x with m (a series or same-shaped frame), and their correlation."""
    m_wide = m if isinstance(m, pd.DataFrame) else pd.DataFrame({c: m for c in x.columns}, index=x.index)
    m_wide = m_wide.where(x.notna())
    mean_x, mean_m = x.rolling(n, min_periods=n).mean(), m_wide.rolling(n, min_periods=n).mean()
    cov = (x * m_wide).rolling(n, min_periods=n).mean() - mean_x * mean_m
    var_x = x.rolling(n, min_periods=n).var(ddof=0)
    var_m = m_wide.rolling(n, min_periods=n).var(ddof=0)
    corr = cov / np.sqrt(var_x * var_m)
    return cov / var_m, corr.where(np.isfinite(corr))


def _market(log_ret: pd.DataFrame, context: MarketContext) -> tuple[pd.Series, pd.Series]:
    """Index level and index log returns: the configured index, else the equal-weight mean of the tickers."""
    if context.index_close is not None and len(context.index_close):
        level = context.index_close.sort_index().reindex(log_ret.index).ffill(limit=3)
        return level, np.log(level).diff()
    ret = log_ret.mean(axis=1)
    return np.exp(ret.fillna(0.0).cumsum()), ret


def _regime(level: pd.Series) -> pd.Series:
    trend = level.rolling(100, min_periods=100).mean()
    slope = trend / trend.shift(20) - 1.0
    regime = np.where((level > trend) & (slope > 0), 1.0, np.where((level < trend) & (slope < 0), -1.0, 0.0))
    return pd.Series(regime, index=level.index).where(slope.notna())


def _cross_section(wide: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rank = wide.rank(axis=1, pct=True)
    z = wide.sub(wide.mean(axis=1), axis=0).div(wide.std(axis=1), axis=0).clip(-5, 5)
    return rank, z


def _indicator_columns(o, h, lo, c, adj, v) -> dict[str, pd.DataFrame]:
    log_ret = np.log(adj).diff()
    macd, bands = ind.macd(c), ind.bollinger(c)
    stoch, adx = ind.stochastic(h, lo, c), ind.adx(h, lo, c)
    sma = {n: ind.sma(c, n) for n in (10, 20, 50)}
    ema = {n: ind.ema(c, n) for n in (12, 26)}
    atr, obv = ind.atr(h, lo, c), ind.obv(c, v)
    columns = {
        **{f"ret_{n}": adj.pct_change(n, fill_method=None) for n in (1, 5, 20)},
        **{f"log_ret_{n}": np.log(adj / adj.shift(n)) for n in (1, 5, 20)},
        "volatility_20": log_ret.rolling(20, min_periods=20).std() * np.sqrt(252),
        "rsi_14": ind.rsi(c),
        "macd_pct": macd["macd"] / c,
        "macd_hist_pct": macd["macd_hist"] / c,
        "stoch_k": stoch["stoch_k"],
        "stoch_d": stoch["stoch_d"],
        **{f"sma_{n}_gap": c / s - 1.0 for n, s in sma.items()},
        **{f"ema_{n}_gap": c / e - 1.0 for n, e in ema.items()},
        "adx_14": adx["adx"],
        "plus_di_14": adx["plus_di"],
        "minus_di_14": adx["minus_di"],
        "bb_pctb": bands["bb_pctb"],
        "bb_width": bands["bb_width"],
        "atr_pct": atr / c,
        "obv_change_20": (obv - obv.shift(20)) / v.rolling(20, min_periods=20).sum().replace(0.0, np.nan),
        "cmf_20": ind.cmf(h, lo, c, v),
        "volume_ratio_20": v / ind.sma(v, 20).replace(0.0, np.nan),
        "close": c,
        "adj_close": adj,
        **{f"sma_{n}": s for n, s in sma.items()},
        **{f"ema_{n}": e for n, e in ema.items()},
        "macd": macd["macd"],
        "macd_signal": macd["macd_signal"],
        "atr_14": atr,
        "bb_middle": bands["bb_middle"],
        "bb_upper": bands["bb_upper"],
        "bb_lower": bands["bb_lower"],
        "obv": obv,
    }
    return columns


def _context_columns(columns: dict[str, pd.DataFrame], context: MarketContext) -> dict[str, pd.DataFrame]:
    log_ret = columns["log_ret_1"]
    level, market_ret = _market(log_ret, context)
    beta, corr = _rolling_corr_cov(log_ret, market_ret, 60)
    _, autocorr = _rolling_corr_cov(log_ret, log_ret.shift(1), 20)
    sector = pd.Series({t: context.sectors.get(t, "all") for t in log_ret.columns})
    ret_20 = columns["ret_20"]
    sector_mean = ret_20.T.groupby(sector).transform("mean").T
    if context.vix is not None and len(context.vix):
        vix = context.vix.sort_index().reindex(log_ret.index).ffill(limit=3)
    else:
        vix = 100.0 * market_ret.rolling(20, min_periods=20).std() * np.sqrt(252)
    present = log_ret.notna() | columns["close"].notna()
    broadcast = lambda s: pd.DataFrame({t: s for t in log_ret.columns}, index=log_ret.index).where(present)  # noqa: E731
    out = {
        "market_corr_60": corr,
        "market_beta_60": beta.where(np.isfinite(beta)),
        "autocorr_20": autocorr,
        "sector_rel_20": ret_20 - sector_mean,
        "market_regime": broadcast(_regime(level)),
        "vix": broadcast(vix),
    }
    for base in RANKED:
        out[f"{base}_rank"], out[f"{base}_z"] = _cross_section(columns[base])
    return out


def compute_features(
    bars: pd.DataFrame, context: MarketContext | None = None, since: pd.Timestamp | str | None = None
) -> pd.DataFrame:
    """Long (date, ticker) feature table for every bar in `bars` (already split/dividend-adjusted) dated `since` or
    later (every bar by default): the technical set, its raw levels and the Alpha158-like library (computed for those
    rows only: it reads 61 sessions, the technical set its whole history)."""
    if bars.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    wide = {col: to_wide(bars, col) for col in ("open", "high", "low", "close", "adj_close", "volume")}
    dates, tickers = wide["close"].index, wide["close"].columns
    rows = len(dates) if since is None else int((dates >= pd.Timestamp(since)).sum())
    if rows == 0:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    columns = _indicator_columns(*wide.values())
    columns.update(_context_columns(columns, context or MarketContext()))
    columns.update(alpha.alpha_features(*wide.values(), rows=rows))
    dates = dates[len(dates) - rows :]
    names = [*FEATURE_COLUMNS, *RAW_COLUMNS, *LIBRARY_COLUMNS]
    # One (rows x features) matrix from the aligned wide frames (DataFrame.stack is the slow path for 60 columns),
    # the rows with a bar only, filled column by column with each frame released once copied: the peak holds the
    # frames and one matrix, not also a list of 219 raveled copies.
    close = columns["close"].reindex(index=dates, columns=tickers).to_numpy(dtype=float).ravel()
    present = ~np.isnan(close)
    matrix = np.empty((int(present.sum()), len(names)))
    for j, name in enumerate(names):
        matrix[:, j] = columns.pop(name).reindex(index=dates, columns=tickers).to_numpy(dtype=float).ravel()[present]
    matrix[np.isinf(matrix)] = np.nan
    long = pd.DataFrame(matrix, columns=names, copy=False)
    long.insert(0, "ticker", np.tile(tickers.to_numpy(), len(dates))[present])
    long.insert(0, "date", np.repeat(dates.to_numpy(), len(tickers))[present])
    long["feature_set_version"] = FEATURE_SET_VERSION
    return long  # TABLE_COLUMNS, rows in (date, ticker) order already: the wide frames' index and columns are sorted


def latest_per_ticker(features: pd.DataFrame) -> pd.DataFrame:
    """The most recent usable feature row of each ticker (the online feature vector)."""
    complete = features.dropna(subset=REQUIRED_FEATURES)
    latest = complete.sort_values("date").groupby("ticker", as_index=False).tail(1)
    return latest.sort_values("ticker", ignore_index=True)
