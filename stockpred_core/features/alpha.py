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

The `features` asset stores it beside the technical set (`compute_features`), the online vectors carry it and the
intraday path computes it from the previous 60 sessions and the running bar (`IntradayFeatures`); a model takes it
when its recipe names the family (`feature_families: [technical, alpha158]`, `stockpred evaluate --features
alpha158`).
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


# the statistics over d changes (close or volume against the session before) read d + 1 sessions, the others d
READS_PREVIOUS = {"roc", "cord", "cntp", "cntn", "cntd", "sump", "sumn", "sumd", "wvma", "vsump", "vsumn", "vsumd"}


def _names() -> dict[str, tuple[str, int]]:
    """Every column's name -> (definition, sessions it looks back over)."""
    out = {PREFIX + k: (v, 1) for k, v in KBAR.items()}
    out.update({PREFIX + k: (v, 1) for k, v in PRICE.items()})
    for key, definition in ROLLING.items():
        for d in WINDOWS:
            out[f"{PREFIX}{key}{d}"] = (re.sub(r"\bd\b", str(d), definition), d + (key in READS_PREVIOUS))
    return out


ALPHA_SPECS = _names()
ALPHA_COLUMNS: list[str] = list(ALPHA_SPECS)
LOOKBACK = max(WINDOWS) + 1  # sessions of bars a day's values read
PAD = max(WINDOWS) - 1  # sessions before an output row its longest window reads


CHUNK_VALUES = 4_000_000  # window values (output rows x tickers x d) held at once by one reduction


def _windows(x: np.ndarray, d: int, rows: int, fn, *others: np.ndarray):
    """`fn` over the windows of `d` sessions ending at each of the last `rows` rows of the arrays `x` (and `others`,
    windowed alike), each (dates x N) with rows of NaN on top where the history is shorter than the windows (`_padded`):
    fn gets (k, N, d) views and returns one or more (k, N) arrays. A window reaching into the padding holds NaN, so
    its value is NaN. Each window's value is computed from its own d values alone: a row's value does not depend on
    where the history starts (a daily run reading 61 sessions equals a backfill over years), and only the rows asked
    for are computed (one day of 10,000 tickers is one (1, 10000, d) reduction per statistic)."""
    first, N = x.shape[0] - rows - d + 1, x.shape[1]  # the window of the first output row starts there
    views = [np.lib.stride_tricks.sliding_window_view(a, d, axis=0)[first:] for a in (x, *others)]  # (rows, N, d)
    step = max(1, CHUNK_VALUES // max(N * d, 1))
    parts = [fn(*(view[start : start + step] for view in views)) for start in range(0, rows, step)]
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(group) for group in zip(*parts, strict=True))
    return np.concatenate(parts)


def _mean(w):
    return w.mean(axis=2)


def _std(w):
    return w.std(axis=2, ddof=1)


def _line_fit(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, R-squared and last residual of the least-squares line of each window on time t = 1..d."""
    d = w.shape[2]
    t = np.arange(1, d + 1) - (d + 1) / 2.0
    sxx = d * (d * d - 1) / 12.0
    mean = w.mean(axis=2)
    sxy = (w * t).sum(axis=2)
    syy = ((w - mean[..., None]) ** 2).sum(axis=2)
    slope = sxy / sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        rsqr = np.where(syy > EPS * mean * mean * d, sxy * sxy / (sxx * syy), np.nan)
    resi = w[..., -1] - (mean + slope * t[-1])
    return slope, np.clip(rsqr, 0.0, 1.0), resi


def _arg_extreme(w: np.ndarray, largest: bool) -> np.ndarray:
    """1-based position of the window's max (min) (1 = the oldest, d = today), the first one on ties, NaN where the
    window has a gap."""
    gap = np.isnan(w).any(axis=2)
    filled = np.where(np.isnan(w), -np.inf if largest else np.inf, w)
    pos = (filled.argmax(axis=2) if largest else filled.argmin(axis=2)).astype(float) + 1.0
    pos[gap] = np.nan
    return pos


def _rank(w: np.ndarray) -> np.ndarray:
    """Percentile of the window's last value among its values, ties averaged (pandas' rolling rank, pct=True)."""
    last = w[..., -1:]
    below, equal = (w < last).sum(axis=2), (w == last).sum(axis=2)
    rank = (below + (equal + 1) / 2) / w.shape[2]
    rank[np.isnan(w).any(axis=2)] = np.nan
    return rank


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of windows; NaN where either is constant."""
    da, db = a - a.mean(axis=2, keepdims=True), b - b.mean(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (da * db).sum(axis=2) / np.sqrt((da * da).sum(axis=2) * (db * db).sum(axis=2))
    return np.where(np.isfinite(corr), corr, np.nan)


def _share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum(a) / (sum(b) + EPS) over each window pair."""
    return a.sum(axis=2) / (b.sum(axis=2) + EPS)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[k:] = x[:-k]
    return out


def _padded(x: np.ndarray, pad: int) -> np.ndarray:
    return np.vstack([np.full((pad, x.shape[1]), np.nan), x]) if pad else x


def raw_alpha(
    o: pd.DataFrame, h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame, v: pd.DataFrame, rows: int | None = None
) -> dict[str, pd.DataFrame]:
    """The 157 columns before normalization for the last `rows` dates (all by default), from adjusted open/high/low/
    close and volume (date x ticker, aligned)."""
    rows = len(c.index) if rows is None else min(rows, len(c.index))
    arrays = raw_alpha_arrays(*(x.to_numpy(dtype=float) for x in (o, h, lo, c, v)), rows=rows)
    dates = c.index[len(c.index) - rows :]
    return {name: pd.DataFrame(x, index=dates, columns=c.columns) for name, x in arrays.items()}


def raw_alpha_arrays(
    OPEN: np.ndarray, H: np.ndarray, L: np.ndarray, C: np.ndarray, V: np.ndarray, rows: int
) -> dict[str, np.ndarray]:
    """`raw_alpha` on (dates x tickers) arrays: {column: (rows x tickers)}, the last `rows` dates, inf as NaN."""
    T = C.shape[0]
    tail = slice(T - rows, T)
    pad = max(0, PAD - (T - rows))  # NaN rows above a history shorter than the longest window needs
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        o_, h_, l_, c_ = OPEN[tail], H[tail], L[tail], C[tail]
        rng = h_ - l_ + EPS
        top, bottom = np.maximum(o_, c_), np.minimum(o_, c_)
        out.update(
            kmid=(c_ - o_) / o_,
            klen=(h_ - l_) / o_,
            kmid2=(c_ - o_) / rng,
            kup=(h_ - top) / o_,
            kup2=(h_ - top) / rng,
            klow=(bottom - l_) / o_,
            klow2=(bottom - l_) / rng,
            ksft=(2 * c_ - h_ - l_) / o_,
            ksft2=(2 * c_ - h_ - l_) / rng,
            open0=o_ / c_,
            high0=h_ / c_,
            low0=l_ / c_,
        )
        prev_c, prev_v = _shift(C, 1), _shift(V, 1)
        change, v_change = C - prev_c, V - prev_v
        known = ~np.isnan(prev_c) & ~np.isnan(C)  # an up/down day needs both closes (a day without a bar is NaN)
        series = {
            "c": C,
            "h": H,
            "l": L,
            "v": V,
            "up": np.where(known, (C > prev_c).astype(float), np.nan),
            "down": np.where(known, (C < prev_c).astype(float), np.nan),
            "gain": np.clip(change, 0.0, None),
            "loss": np.clip(-change, 0.0, None),
            "abs": np.abs(change),
            "v_gain": np.clip(v_change, 0.0, None),
            "v_loss": np.clip(-v_change, 0.0, None),
            "v_abs": np.abs(v_change),
            "log_v": np.log(V + 1.0),
            "ret_ratio": C / prev_c,
            "v_ratio": np.log(V / np.where(prev_v == 0.0, np.nan, prev_v) + 1.0),
            "weighted": np.abs(C / prev_c - 1.0) * V,
        }
        p = {name: _padded(x, pad) for name, x in series.items()}
        v_now = V[tail] + EPS
        for d in WINDOWS:
            slope, rsqr, resi = _windows(p["c"], d, rows, _line_fit)
            hi = _windows(p["h"], d, rows, lambda w: w.max(axis=2))
            low = _windows(p["l"], d, rows, lambda w: w.min(axis=2))
            imax = _windows(p["h"], d, rows, lambda w: _arg_extreme(w, True))
            imin = _windows(p["l"], d, rows, lambda w: _arg_extreme(w, False))
            sump, sumn = _windows(p["gain"], d, rows, _share, p["abs"]), _windows(p["loss"], d, rows, _share, p["abs"])
            cntp, cntn = _windows(p["up"], d, rows, _mean), _windows(p["down"], d, rows, _mean)
            vsump = _windows(p["v_gain"], d, rows, _share, p["v_abs"])
            vsumn = _windows(p["v_loss"], d, rows, _share, p["v_abs"])
            qtlu, qtld = _windows(p["c"], d, rows, lambda w: tuple(np.quantile(w, [0.8, 0.2], axis=2)))
            columns = {
                "roc": _shift(C, d)[tail] / c_,
                "ma": _windows(p["c"], d, rows, _mean) / c_,
                "std": _windows(p["c"], d, rows, _std) / c_,
                "beta": slope / c_,
                "rsqr": rsqr,
                "resi": resi / c_,
                "max": hi / c_,
                "min": low / c_,
                "qtlu": qtlu / c_,
                "qtld": qtld / c_,
                "rank": _windows(p["c"], d, rows, _rank),
                "rsv": (c_ - low) / (hi - low + EPS),
                "imax": imax / d,
                "imin": imin / d,
                "imxd": (imax - imin) / d,
                "corr": _windows(p["c"], d, rows, _corr, p["log_v"]),
                "cord": _windows(p["ret_ratio"], d, rows, _corr, p["v_ratio"]),
                "cntp": cntp,
                "cntn": cntn,
                "cntd": cntp - cntn,
                "sump": sump,
                "sumn": sumn,
                "sumd": sump - sumn,
                "vma": _windows(p["v"], d, rows, _mean) / v_now,
                "vstd": _windows(p["v"], d, rows, _std) / v_now,
                "wvma": _windows(p["weighted"], d, rows, lambda w: _std(w) / (_mean(w) + EPS)),
                "vsump": vsump,
                "vsumn": vsumn,
                "vsumd": vsump - vsumn,
            }
            out.update({f"{k}{d}": x for k, x in columns.items()})
    for x in out.values():  # each a fresh array: inf to NaN in place (no second copy of 157 frames)
        x[~np.isfinite(x)] = np.nan
    return {name: out[name[len(PREFIX) :]] for name in ALPHA_COLUMNS}


def _row_median(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Each row's median of its `count` non-NaN values (NaN sorts last), as a column; np.nanmedian's value, at a
    fraction of its cost here (it sorts masked arrays: 6.4 of the library's 16.7 s on the S&P 500 file)."""
    ordered = np.sort(values, axis=1)
    low = np.maximum((count - 1) // 2, 0)[:, None]
    high = np.maximum(count // 2, 0)[:, None]
    return (np.take_along_axis(ordered, low, axis=1) + np.take_along_axis(ordered, high, axis=1)) / 2


def cross_sectional_robust_z(wide: pd.DataFrame) -> pd.DataFrame:
    """Each day's values less the day's median, over a robust spread of that day's values, clipped to +-3: 1.4826 x the
    median absolute deviation, or where that is 0 (half the names or more share the median: a count or an index
    column over a short window) the standard deviation, so the other names keep their order; 0 for a day without
    spread, NaN on a day with fewer than MIN_NAMES values. (Qlib's RobustZScoreNorm fits one median and MAD per
    feature over the training period; per day, this keeps each day's cross-section alone.)"""
    values = wide.to_numpy(dtype=float)
    missing = np.isnan(values)
    count = values.shape[1] - missing.sum(axis=1)
    few = count < MIN_NAMES
    values = np.where(few[:, None], 0.0, values)  # rows of too few names: NaN in the end
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        median = _row_median(values, count)
        deviation = values - median
        spread = _row_median(np.abs(deviation), count) * MAD_TO_STD
        flat = np.flatnonzero(spread[:, 0] == 0)  # the standard deviation only where the MAD is 0
        if len(flat):
            spread[flat] = np.nanstd(values[flat], axis=1, keepdims=True)
        z = np.where(spread > 0, np.clip(deviation / spread, -CLIP, CLIP), 0.0)
    z[missing] = np.nan
    z[few] = np.nan
    return pd.DataFrame(z, index=wide.index, columns=wide.columns)


def alpha_features(o, h, lo, c, adj, v, rows: int | None = None) -> dict[str, pd.DataFrame]:
    """The normalized library for the last `rows` dates (all by default) from the wide bar frames (split-adjusted
    OHLC, adj_close, volume): prices scaled to adj_close by each day's factor, then every column cross-sectionally
    robust-z-scored."""
    factor = adj / c
    raw = raw_alpha(o * factor, h * factor, lo * factor, adj, v, rows)
    # one column at a time, each raw frame released once normalized: the peak holds one set of 157 frames, not two
    return {name: cross_sectional_robust_z(raw.pop(name)) for name in list(raw)}


FAMILY = "alpha158"  # its name among a recipe's feature families

BAR_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
