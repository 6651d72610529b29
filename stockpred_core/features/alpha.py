"""An Alpha158-like feature library: Qlib's public Alpha158 formulas (k-line shapes, price ratios and rolling
price/volume statistics over 5-60 sessions) on wide (date x ticker) frames, then normalized across each day's
cross-section.

The formulas are Qlib's (`qlib.contrib.data.loader.Alpha158DL`) on dividend- and split-adjusted prices: open, high
and low are scaled by each day's adj_close / close, as Qlib scales every price by its adjustment factor. Qlib's VWAP0
is left out (the bars carry no VWAP), so there are 157 columns. Every value for day D uses bars dated D or earlier
(at most 61 sessions of them): no recursion, so a daily run equals a backfill once 61 sessions are read.

Each column is then normalized per day across the tickers (median and MAD, falling back to the standard deviation
where the MAD is 0, z-scored and clipped to +-3), so a model sees where a stock stands in its universe that day, not
the market's level. A day with fewer than `MIN_NAMES` values leaves the column NaN.

Only backtests take it (`feature_families: [technical, alpha158]`, `stockpred evaluate --features alpha158`), computed
from the bars of the window they read: the served feature vectors and the intraday path carry the technical set.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

WINDOWS = (5, 10, 20, 30, 60)
PREFIX = "a158_"
EPS = 1e-12
MIN_NAMES = 5
CLIP = 3.0
MAD_TO_STD = 1.4826

KBAR = {
    "kmid": "(close - open) / open",
    "klen": "(high - low) / open",
    "kmid2": "(close - open) / (high - low)",
    "kup": "(high - max(open, close)) / open",
    "kup2": "(high - max(open, close)) / (high - low)",
    "klow": "(min(open, close) - low) / open",
    "klow2": "(min(open, close) - low) / (high - low)",
    "ksft": "(2 close - high - low) / open",
    "ksft2": "(2 close - high - low) / (high - low)",
}
PRICE = {"open0": "open / close", "high0": "high / close", "low0": "low / close"}
ROLLING = {
    "roc": "close[-d] / close",
    "ma": "mean(close, d) / close",
    "std": "std(close, d) / close",
    "beta": "slope of close on time over d sessions / close",
    "rsqr": "R-squared of close on time over d sessions",
    "resi": "residual of today's close from that line / close",
    "max": "max(high, d) / close",
    "min": "min(low, d) / close",
    "qtlu": "80% quantile of close over d / close",
    "qtld": "20% quantile of close over d / close",
    "rank": "percentile of today's close among the last d closes",
    "rsv": "(close - min(low, d)) / (max(high, d) - min(low, d))",
    "imax": "sessions-into-window of max(high, d) / d",
    "imin": "sessions-into-window of min(low, d) / d",
    "imxd": "(imax - imin), the index of the high less that of the low / d",
    "corr": "corr(close, log(volume + 1), d)",
    "cord": "corr(close / close[-1], log(volume / volume[-1] + 1), d)",
    "cntp": "share of up days over d",
    "cntn": "share of down days over d",
    "cntd": "cntp - cntn",
    "sump": "sum of gains / sum of |changes| over d",
    "sumn": "sum of losses / sum of |changes| over d",
    "sumd": "sump - sumn",
    "vma": "mean(volume, d) / volume",
    "vstd": "std(volume, d) / volume",
    "wvma": "std(|ret| x volume, d) / mean(|ret| x volume, d)",
    "vsump": "sum of volume increases / sum of |volume changes| over d",
    "vsumn": "sum of volume decreases / sum of |volume changes| over d",
    "vsumd": "vsump - vsumn",
}


def _names() -> dict[str, tuple[str, int]]:
    """Every column's name -> (definition, sessions it looks back over)."""
    out = {PREFIX + k: (v, 1) for k, v in KBAR.items()}
    out.update({PREFIX + k: (v, 1) for k, v in PRICE.items()})
    for key, definition in ROLLING.items():
        for d in WINDOWS:
            out[f"{PREFIX}{key}{d}"] = (re.sub(r"\bd\b", str(d), definition), d + 1)
    return out


ALPHA_SPECS = _names()
ALPHA_COLUMNS: list[str] = list(ALPHA_SPECS)
LOOKBACK = max(WINDOWS) + 1  # sessions of bars a day's values read


def _rolling_sum(x: pd.DataFrame, d: int) -> pd.DataFrame:
    return x.rolling(d, min_periods=d).sum()


def _line_fit(c: pd.DataFrame, d: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Slope, R-squared and last residual of the least-squares line of `c` on time t = 1..d over each window of d
    sessions. The slope is sum((t - mean t) x c) / sum((t - mean t)^2), summed over the d shifted copies of c, so each
    window's value depends only on its own d values (not on where the history starts)."""
    values = c.to_numpy(dtype=float)
    t_mean = (d + 1) / 2.0
    sxx = d * (d * d - 1) / 12.0
    sxy = np.full(values.shape, np.nan)
    if len(values) >= d:
        acc = np.zeros((len(values) - d + 1, values.shape[1]))
        for k in range(d):  # window position t = k + 1: rows k .. k + T - d
            acc += (k + 1 - t_mean) * values[k : k + len(values) - d + 1]
        sxy[d - 1 :] = acc
    sxy = pd.DataFrame(sxy, index=c.index, columns=c.columns)
    slope = sxy / sxx
    mean_c = c.rolling(d, min_periods=d).mean()
    syy = c.rolling(d, min_periods=d).var(ddof=0) * d
    rsqr = (sxy * sxy / (sxx * syy)).where(syy > EPS * mean_c * mean_c * d)
    resi = c - (mean_c + slope * (d - t_mean))
    return slope, rsqr.clip(0.0, 1.0), resi


def _arg_extreme(x: pd.DataFrame, d: int, largest: bool) -> pd.DataFrame:
    """1-based position of the window's max (min) in the last d sessions (1 = the oldest, d = today), first one on
    ties (numpy's argmax), NaN where the window has a gap."""
    values = x.to_numpy(dtype=float)
    out = np.full(values.shape, np.nan)
    if len(values) >= d:
        windows = np.lib.stride_tricks.sliding_window_view(values, d, axis=0)  # (T - d + 1, N, d), a view
        filled = np.where(np.isnan(windows), -np.inf if largest else np.inf, windows)
        pos = (filled.argmax(axis=2) if largest else filled.argmin(axis=2)).astype(float) + 1.0
        pos[np.isnan(windows).any(axis=2)] = np.nan
        out[d - 1 :] = pos
    return pd.DataFrame(out, index=x.index, columns=x.columns)


def _rolling_corr(a: pd.DataFrame, b: pd.DataFrame, d: int) -> pd.DataFrame:
    corr = a.rolling(d, min_periods=d).corr(b)
    return corr.where(np.isfinite(corr))


def raw_alpha(o: pd.DataFrame, h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame, v: pd.DataFrame) -> dict:
    """The 157 columns before normalization, from adjusted open/high/low/close and volume (date x ticker)."""
    out: dict[str, pd.DataFrame] = {}
    rng = h - lo + EPS
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    kbar = {
        "kmid": (c - o) / o,
        "klen": (h - lo) / o,
        "kmid2": (c - o) / rng,
        "kup": (h - top) / o,
        "kup2": (h - top) / rng,
        "klow": (bottom - lo) / o,
        "klow2": (bottom - lo) / rng,
        "ksft": (2 * c - h - lo) / o,
        "ksft2": (2 * c - h - lo) / rng,
        "open0": o / c,
        "high0": h / c,
        "low0": lo / c,
    }
    out.update({PREFIX + k: v_ for k, v_ in kbar.items()})
    prev_c, prev_v = c.shift(1), v.shift(1)
    change = c - prev_c
    up, down = (c > prev_c).astype(float).where(prev_c.notna()), (c < prev_c).astype(float).where(prev_c.notna())
    gain, loss, abs_change = change.clip(lower=0.0), (-change).clip(lower=0.0), change.abs()
    v_change = v - prev_v
    v_gain, v_loss, v_abs = v_change.clip(lower=0.0), (-v_change).clip(lower=0.0), v_change.abs()
    log_v = np.log(v + 1.0)
    ret_ratio, v_ratio = c / prev_c, np.log(v / prev_v.replace(0.0, np.nan) + 1.0)
    weighted = (c / prev_c - 1.0).abs() * v
    for d in WINDOWS:
        roll_c = c.rolling(d, min_periods=d)
        hi, low = h.rolling(d, min_periods=d).max(), lo.rolling(d, min_periods=d).min()
        slope, rsqr, resi = _line_fit(c, d)
        imax, imin = _arg_extreme(h, d, True), _arg_extreme(lo, d, False)
        sump = _rolling_sum(gain, d) / (_rolling_sum(abs_change, d) + EPS)
        sumn = _rolling_sum(loss, d) / (_rolling_sum(abs_change, d) + EPS)
        cntp, cntn = up.rolling(d, min_periods=d).mean(), down.rolling(d, min_periods=d).mean()
        vsump = _rolling_sum(v_gain, d) / (_rolling_sum(v_abs, d) + EPS)
        vsumn = _rolling_sum(v_loss, d) / (_rolling_sum(v_abs, d) + EPS)
        columns = {
            "roc": c.shift(d) / c,
            "ma": roll_c.mean() / c,
            "std": roll_c.std() / c,
            "beta": slope / c,
            "rsqr": rsqr,
            "resi": resi / c,
            "max": hi / c,
            "min": low / c,
            "qtlu": roll_c.quantile(0.8) / c,
            "qtld": roll_c.quantile(0.2) / c,
            "rank": roll_c.rank(pct=True),
            "rsv": (c - low) / (hi - low + EPS),
            "imax": imax / d,
            "imin": imin / d,
            "imxd": (imax - imin) / d,
            "corr": _rolling_corr(c, log_v, d),
            "cord": _rolling_corr(ret_ratio, v_ratio, d),
            "cntp": cntp,
            "cntn": cntn,
            "cntd": cntp - cntn,
            "sump": sump,
            "sumn": sumn,
            "sumd": sump - sumn,
            "vma": v.rolling(d, min_periods=d).mean() / (v + EPS),
            "vstd": v.rolling(d, min_periods=d).std() / (v + EPS),
            "wvma": weighted.rolling(d, min_periods=d).std() / (weighted.rolling(d, min_periods=d).mean() + EPS),
            "vsump": vsump,
            "vsumn": vsumn,
            "vsumd": vsump - vsumn,
        }
        out.update({f"{PREFIX}{k}{d}": v_ for k, v_ in columns.items()})
    return {name: out[name].replace([np.inf, -np.inf], np.nan) for name in ALPHA_COLUMNS}


def cross_sectional_robust_z(wide: pd.DataFrame) -> pd.DataFrame:
    """Each day's values less the day's median, over a robust spread of that day's values, clipped to +-3: 1.4826 x the
    median absolute deviation, or where that is 0 (half the names or more share the median: a count or an index
    column over a short window) the standard deviation, so the other names keep their order; 0 for a day without
    spread, NaN on a day with fewer than MIN_NAMES values. (Qlib's RobustZScoreNorm fits one median and MAD per
    feature over the training period; per day, this keeps each day's cross-section alone.)"""
    values = wide.to_numpy(dtype=float)
    count = np.sum(~np.isnan(values), axis=1)
    values = np.where((count >= MIN_NAMES)[:, None], values, 0.0)  # no all-NaN row reaches nanmedian
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(values, axis=1, keepdims=True)
        spread = np.nanmedian(np.abs(values - median), axis=1, keepdims=True) * MAD_TO_STD
        spread = np.where(spread > 0, spread, np.nanstd(values, axis=1, keepdims=True))
        z = np.where(spread > 0, np.clip((values - median) / spread, -CLIP, CLIP), 0.0)
    z[np.isnan(values)] = np.nan
    z[count < MIN_NAMES] = np.nan
    return pd.DataFrame(z, index=wide.index, columns=wide.columns)


def alpha_features(o, h, lo, c, adj, v) -> dict[str, pd.DataFrame]:
    """The normalized library from the wide bar frames (split-adjusted OHLC, adj_close, volume): prices scaled to
    adj_close by each day's factor, then every column cross-sectionally robust-z-scored."""
    factor = adj / c
    raw = raw_alpha(o * factor, h * factor, lo * factor, adj, v)
    return {name: cross_sectional_robust_z(frame) for name, frame in raw.items()}


FAMILY = "alpha158"  # its name among a recipe's feature families


def alpha_table(bars: pd.DataFrame) -> pd.DataFrame:
    """The library as a long (date, ticker, *ALPHA_COLUMNS) table from daily bars (open, high, low, close, adj_close,
    volume; split-adjusted), one row per bar; the cross-sections are those of the tickers in `bars`."""
    if bars.empty:
        return pd.DataFrame(columns=["date", "ticker", *ALPHA_COLUMNS])
    wide = {col: bars.pivot(index="date", columns="ticker", values=col).sort_index() for col in BAR_FIELDS}
    columns = alpha_features(*wide.values())
    dates, tickers = wide["close"].index, wide["close"].columns
    matrix = np.column_stack([columns[name].to_numpy(dtype=float).ravel() for name in ALPHA_COLUMNS])
    present = ~np.isnan(wide["close"].to_numpy(dtype=float).ravel())
    long = pd.DataFrame(matrix[present], columns=ALPHA_COLUMNS)
    long.insert(0, "ticker", np.tile(tickers.to_numpy(), len(dates))[present])
    long.insert(0, "date", np.repeat(dates.to_numpy(), len(tickers))[present])
    return long


BAR_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
