"""Technical indicators on wide frames (index: session date, columns: tickers), computed for every ticker at once.

Each indicator is TA-Lib's algorithm (same seeding, same zero tests, same running totals, same operation order), run on
every ticker's own valid rows: a ticker that lists late, misses a day or stops trading is computed exactly as TA-Lib
run on that ticker's rows, and the results are put back on the frame's dates. Warm-up rows and missing rows are NaN.
Every value at row D uses rows <= D only. A row is valid for an indicator when all of its inputs are present.

The loops are compiled with numba (one pass per ticker, like TA-Lib's C), cached on disk after the first call.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
from numba.extending import intrinsic

# TA-Lib's TA_EPSILON: its zero tests (TA_IS_ZERO, TA_IS_ZERO_SCALED) use this band.
EPSILON = 1e-14

_jit = numba.njit(cache=True, nogil=True)


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once. TA-Lib's current builds fuse the EMA and ATR steps; spelling out the same fused
    operation reproduces their bits on every CPU, where letting LLVM contract would depend on how it inlines."""
    signature = numba.types.float64(numba.types.float64, numba.types.float64, numba.types.float64)
    return signature, lambda context, builder, sig, args: builder.fma(*args)


# --- one ticker: TA-Lib's algorithms on contiguous rows (x: inputs, p: parameters, y: outputs, NaN-filled) -----------


@_jit
def _sma(x, n, y):
    """TA_INT_SMA: a running total that adds the new value, is read, then drops the oldest."""
    if len(x) < n:
        return
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    for i in range(n - 1, len(x)):
        total += x[i]
        y[i] = total / n
        total -= x[i - n + 1]


@_jit
def _ema(x, n, k, start, y):
    """TA_INT_EMA from row `start`: seeded with the mean of the n rows up to it, then y = (x - y) * k + y."""
    if start >= len(x):
        return
    total = 0.0
    for i in range(start - n + 1, start + 1):
        total += x[i]
    value = total / n
    y[start] = value
    for i in range(start + 1, len(x)):
        value = _fma(x[i] - value, k, value)
        y[i] = value


@_jit
def _rsi(x, n, y):
    """TA-Lib RSI: Wilder's average gain and loss, (avg * (n-1) + move) * (1/n); 0 while nothing has moved."""
    if len(x) <= n:
        return
    inv = 1.0 / n
    gain = loss = 0.0
    for i in range(1, len(x)):
        move = x[i] - x[i - 1]
        up = max(move, 0.0)
        if i > n:
            gain *= n - 1
            loss *= n - 1
        gain += up
        loss += up - move
        if i >= n:
            gain *= inv
            loss *= inv
            total = gain + loss
            y[i] = 100.0 * (gain / total) if total > 0.0 else 0.0


@_jit
def _macd(x, fast, slow, signal, y):
    """TA-Lib MACD (outputs: line, signal, histogram): both EMAs start on the slow EMA's first row, the fast one seeded
    with its own last `fast` rows; the signal is an EMA of the line; all three start with the signal. The histogram
    row holds the slow EMA until the end."""
    start, first = slow - 1, slow + signal - 2
    if first >= len(x):
        return
    line, sig, hist = y[0], y[1], y[2]
    _ema(x, fast, 2.0 / (fast + 1), start, line)
    _ema(x, slow, 2.0 / (slow + 1), start, hist)
    for i in range(start, len(x)):
        line[i] -= hist[i]
    _ema(line, signal, 2.0 / (signal + 1), first, sig)
    for i in range(first, len(x)):
        hist[i] = line[i] - sig[i]
    line[:first] = np.nan
    hist[:first] = np.nan


@_jit
def _stochastic(high, low, close, fastk, slowk, slowd, y):
    """TA-Lib STOCH with SMA smoothing: fast %K over `fastk` rows, slow %K = SMA(fast %K), %D = SMA(slow %K); both
    outputs start with %D. Fast %K is kept in the %D row until %D replaces it."""
    m = len(close)
    first = fastk + slowk + slowd - 3
    if m <= first:
        return
    fast, slow_k, slow_d = y[1], y[0], y[1]
    for i in range(fastk - 1, m):
        highest, lowest = high[i], low[i]
        for j in range(i - fastk + 1, i):
            highest = max(highest, high[j])
            lowest = min(lowest, low[j])
        span = highest - lowest
        # A range within TA_EPSILON of the extremes' magnitude is flat; TA-Lib's %K is then 0.
        flat = abs(span) <= EPSILON * (abs(highest) + abs(lowest))
        fast[i] = 0.0 if flat else (close[i] - lowest) / span * 100.0
    _sma(fast[fastk - 1 :], slowk, slow_k[fastk - 1 :])
    _sma(slow_k[fastk + slowk - 2 :], slowd, slow_d[fastk + slowk - 2 :])
    slow_k[:first] = np.nan
    slow_d[:first] = np.nan


@_jit
def _true_range(high, low, close, i):
    """TA-Lib's TRUE_RANGE of row i against the previous close."""
    out = high[i] - low[i]
    out = max(out, abs(high[i] - close[i - 1]))
    return max(out, abs(low[i] - close[i - 1]))


@_jit
def _adx(high, low, close, n, y):
    """TA-Lib ADX, PLUS_DI and MINUS_DI (outputs 0, 1, 2): Wilder's running sums S -= S/n; S += x of TR, +DM and -DM,
    seeded with the sum of rows 1..n-1; DI from row n; the first ADX (row 2n-1) is the mean of n DX values."""
    m = len(close)
    if m <= n:
        return
    plus_dm = minus_dm = tr = dx_sum = adx = 0.0
    for i in range(1, m):
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        if i >= n:
            plus_dm -= plus_dm / n
            minus_dm -= minus_dm / n
        # +DM is the up-move when positive and larger than the down-move, -DM the other way round (never both).
        minus_dm += down if down > 0 and up < down else 0.0
        plus_dm += up if up > 0 and up > down else 0.0
        move = _true_range(high, low, close, i)
        tr = tr - tr / n + move if i >= n else tr + move
        if i < n:
            continue
        # TA-Lib skips a row whose TR sum is zero (DI reads 0) or whose DI sum is within TA_EPSILON of zero: the row
        # adds nothing to the ADX.
        dx = np.nan
        y[1, i] = y[2, i] = 0.0
        if tr > 0.0:
            y[1, i] = 100.0 * (plus_dm / tr)
            y[2, i] = 100.0 * (minus_dm / tr)
            di_sum = y[2, i] + y[1, i]
            if abs(di_sum) >= EPSILON:
                dx = 100.0 * (abs(y[2, i] - y[1, i]) / di_sum)
        if i < 2 * n - 1:
            dx_sum += 0.0 if np.isnan(dx) else dx
            continue
        if i == 2 * n - 1:
            adx = (dx_sum + (0.0 if np.isnan(dx) else dx)) / n
        elif not np.isnan(dx):
            adx = (adx * (n - 1) + dx) / n
        y[0, i] = adx


@_jit
def _atr(high, low, close, n, y):
    """TA-Lib ATR: the mean of the first n true ranges (rows 1..n), then Wilder's step as two coefficients,
    ATR = a * TR + b * ATR with b = (n-1)/n and a = 1 - b."""
    if len(close) <= n:
        return
    value = 0.0
    for i in range(1, n + 1):
        value += _true_range(high, low, close, i)
    value /= n
    y[n] = value
    beta = (n - 1) / n
    alpha = 1.0 - beta
    for i in range(n + 1, len(close)):
        value = _fma(beta, value, alpha * _true_range(high, low, close, i))
        y[i] = value


@_jit
def _shifted_moments(x, end, n, shift):
    """Sum and sum of squares of x - shift over the n rows ending at `end`."""
    total = squares = 0.0
    for j in range(end - n + 1, end + 1):
        d = x[j] - shift
        total += d
        squares += d * d
    return total, squares


@_jit
def _bollinger(x, n, k, y):
    """TA-Lib BBANDS (SMA): middle = running-total SMA; deviation from running totals of x - shift, where the shift is
    re-anchored on the window mean whenever the totals go stale (TA-Lib's cancellation-free variance). Outputs: middle,
    upper, lower, %b, width."""
    if len(x) < n:
        return
    inv = 1.0 / n
    shift = x[0]
    ma_total, var1, var2 = 0.0, 0.0, 0.0
    for j in range(n - 1):
        ma_total += x[j]
        d = x[j] - shift
        var1 += d
        var2 += d * d
    since_reseed = 32 * n
    for i in range(n - 1, len(x)):
        ma_total += x[i]
        d = x[i] - shift
        var1 += d
        var2 += d * d
        mean1 = var1 * inv
        variance = var2 * inv - mean1 * mean1
        middle = ma_total / n
        ma_total -= x[i - n + 1]
        d = x[i - n + 1] - shift
        var1 -= d
        d *= d
        var2 -= d
        since_reseed -= 1
        if variance < 0.000001 * (var2 * inv) or d > 1000000.0 * var2 or since_reseed <= 0:
            since_reseed = 32 * n
            shift = 0.0
            for j in range(i - n + 1, i + 1):
                shift += x[j]
            shift *= inv
            var1, var2 = _shifted_moments(x, i, n, shift)
            mean1 = var1 * inv
            variance = var2 * inv - mean1 * mean1
            if variance < 0.000000000001 * (var2 * inv):
                variance = 0.0
            d = x[i - n + 1] - shift
            var1 -= d
            var2 -= d * d
        spread = k * (np.sqrt(variance) if variance != 0.0 else 0.0)
        y[0, i], y[1, i], y[2, i] = middle, middle + spread, middle - spread
        width = y[1, i] - y[2, i]
        y[3, i] = (x[i] - y[2, i]) / width if width != 0.0 else np.nan
        y[4, i] = width / middle if middle != 0.0 else np.nan


@_jit
def _obv(close, volume, y):
    """TA-Lib OBV: starts at the first row's volume, then adds or subtracts each row's volume."""
    if len(close) == 0:
        return
    value = volume[0]
    y[0] = value
    for i in range(1, len(close)):
        value += ((close[i] > close[i - 1]) - (close[i] < close[i - 1])) * volume[i]
        y[i] = value


@_jit
def _cmf(high, low, close, volume, n, y):
    """Chaikin Money Flow: sum(MFV, n) / sum(volume, n), MFV = ((close-low) - (high-close)) / (high-low) * volume,
    0 when high == low. A window in which no volume traded has no money flow to measure: NaN. The count of rows with
    volume decides that exactly, where a running total could keep a rounding residue."""
    flow = np.empty(len(close))
    money = traded = 0.0
    active = 0
    for i in range(len(close)):
        span = high[i] - low[i]
        flow[i] = ((close[i] - low[i]) - (high[i] - close[i])) / span * volume[i] if span != 0.0 else 0.0
        money += flow[i]
        traded += volume[i]
        active += volume[i] != 0.0
        if i >= n - 1:
            y[i] = money / traded if active > 0 else np.nan
            money -= flow[i - n + 1]
            traded -= volume[i - n + 1]
            active -= volume[i - n + 1] != 0.0


# --- all tickers: each ticker's complete rows as one contiguous series ------------------------------------------------

SMA, EMA, RSI, MACD, STOCH, ADX, TRANGE, ATR, BBANDS, OBV, CMF, STANDARD = range(12)

# Outputs of indicator_set(), in the order _standard_set() writes them.
STANDARD_SET = (
    "rsi_14 macd macd_signal macd_hist stoch_k stoch_d sma_10 sma_20 sma_50 ema_12 ema_26 "
    "adx_14 plus_di_14 minus_di_14 bb_middle bb_upper bb_lower bb_pctb bb_width atr_14 obv cmf_20"
).split()


@_jit
def _standard_set(high, low, close, volume, y):
    _rsi(close, 14, y[0])
    _macd(close, 12, 26, 9, y[1:4])
    _stochastic(high, low, close, 14, 3, 3, y[4:6])
    _sma(close, 10, y[6])
    _sma(close, 20, y[7])
    _sma(close, 50, y[8])
    _ema(close, 12, 2.0 / 13, 11, y[9])
    _ema(close, 26, 2.0 / 27, 25, y[10])
    _adx(high, low, close, 14, y[11:14])
    _bollinger(close, 20, 2.0, y[14:19])
    _atr(high, low, close, 14, y[19])
    _obv(close, volume, y[20])
    _cmf(high, low, close, volume, 20, y[21])


@_jit
def _one(code, x, m, p, y):
    """Run indicator `code` on one ticker's series: the first m columns of x (inputs) into y (outputs)."""
    a, b, c, d = x[0][:m], x[1 % len(x)][:m], x[2 % len(x)][:m], x[3 % len(x)][:m]
    if code == SMA:
        _sma(a, int(p[0]), y[0])
    elif code == EMA:
        _ema(a, int(p[0]), p[1], int(p[0]) - 1, y[0])
    elif code == RSI:
        _rsi(a, int(p[0]), y[0])
    elif code == MACD:
        _macd(a, int(p[0]), int(p[1]), int(p[2]), y)
    elif code == STOCH:
        _stochastic(a, b, c, int(p[0]), int(p[1]), int(p[2]), y)
    elif code == ADX:
        _adx(a, b, c, int(p[0]), y)
    elif code == TRANGE:
        for i in range(1, m):
            y[0, i] = _true_range(a, b, c, i)
    elif code == ATR:
        _atr(a, b, c, int(p[0]), y[0])
    elif code == BBANDS:
        _bollinger(a, int(p[0]), p[1], y)
    elif code == OBV:
        _obv(a, b, y[0])
    elif code == CMF:
        _cmf(a, b, c, d, int(p[0]), y[0])
    elif code == STANDARD:
        _standard_set(a, b, c, d, y)


@_jit
def _panel(code, inputs, p, out):
    """inputs (tickers, k, rows) and out (tickers, outputs, rows, NaN-filled): each ticker's block is contiguous. A
    ticker's complete rows (all k inputs present) form its series; when a row is incomplete (late listing, gap), the
    complete rows are gathered into one contiguous series and the results written back to their rows."""
    tickers, k, rows = inputs.shape
    at = np.empty(rows, np.int64)
    x = np.empty((k, rows))
    y = np.empty((out.shape[1], rows))
    for t in range(tickers):
        m = 0
        for r in range(rows):
            present = True
            for i in range(k):
                present &= inputs[t, i, r] == inputs[t, i, r]  # False for NaN
            at[m] = r
            m += present
        if m == rows:
            _one(code, inputs[t], m, p, out[t])
            continue
        for i in range(k):
            for j in range(m):
                x[i, j] = inputs[t, i, at[j]]
        y[:, :m] = np.nan
        _one(code, x, m, p, y)
        for o in range(y.shape[0]):
            for j in range(m):
                out[t, o, at[j]] = y[o, j]


def _run(code: int, frames: list[pd.DataFrame], names: list[str], *params: float) -> dict[str, pd.DataFrame]:
    """Indicator `code` for every ticker of the aligned wide `frames`; outputs on the first frame's grid."""
    like = frames[0]
    inputs = np.empty((like.shape[1], len(frames), like.shape[0]))
    for i, frame in enumerate(frames):
        np.copyto(inputs[:, i], _aligned(frame, like).to_numpy(dtype=np.float64).T)
    out = np.full((like.shape[1], len(names), like.shape[0]), np.nan)
    _panel(code, inputs, np.asarray(params, dtype=np.float64), out)
    return {name: pd.DataFrame(out[:, o].T, index=like.index, columns=like.columns) for o, name in enumerate(names)}


def _aligned(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    if frame.index.equals(like.index) and frame.columns.equals(like.columns):
        return frame
    return frame.reindex(index=like.index, columns=like.columns)


def _period(n: int) -> int:
    if n < 1:
        raise ValueError(f"an indicator period must be at least 1, got {n}")
    return n


# --- public API: wide frames in, wide frames out ----------------------------------------------------------------------


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
