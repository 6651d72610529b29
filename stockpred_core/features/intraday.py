"""The daily feature row during the session: what the daily model sees for a ticker at a moment of session D.

Definition. The intraday feature row of a ticker at a moment of D is `compute_features(history + D's running daily
bars)` restricted to date D, where a ticker's running bar is the aggregate of its intraday bars so far (open = first
open, high = max, low = min, close = last close, volume = sum; the caller keeps it) and adj_close = close * factor,
factor = adj_close / close of the ticker's last history row (1.0 when it has none). A ticker without an intraday bar
yet on D has no row on D: it is NaN there, as a ticker absent on a date is in the batch's wide frames (so it is left
out of D's cross-section and of the equal-weight market return).

`IntradayFeatures` computes that row incrementally, equal to the batch (`features/batch.py`) to rounding:

- Committed state: the history up to the last completed session. The standard indicator set is
  `IncrementalIndicators`' per-ticker state; the statistics keep, per ticker, rings of the last committed daily values
  they read (adj_close, log returns, OBV, volume) laid out on the union date axis of the history (NaN where a ticker
  has no bar, exactly as the batch's wide frames), and, for the market, rings of its return, level and SMA(100)
  trend (with the raw configured index/VIX values the batch's reindex + ffill(limit=3) reads).
- Per update, per ticker (O(1) in the universe size, numpy over the tickers of the update): the indicators from a
  copy of the ticker's committed state row stepped once with the running bar (`incremental/provisional.py`), the
  statistics from the rings plus the running bar (windows of at most 60 sessions).
- Per update call, the cross-section (O(N) in the universe size N, plus one sort of N values per ranked feature):
  today's base values of every ticker are kept (NaN without a running bar) and D's ranks, z-scores, sector means of
  ret_20 and, without a configured index, the equal-weight market return (hence beta, correlation, regime and the
  derived VIX) are recomputed from them. Rows returned earlier for other tickers are not revised: a row is exact as
  of the update that returned it.
- The Alpha158-like library (`alpha.py`): rings of each ticker's last 60 committed adjusted open, high, low, close
  (adj_close) and volume; per update, the raw values of the updated tickers from their rings plus the running bar
  (`alpha.raw_alpha_arrays`, one row), kept per ticker for D, then each column robust-z-scored across every ticker
  with a running bar. `set_library(False)` leaves the columns NaN (the stream's default unless configured or its
  champion takes them: they cost ~6x the rest of a row); switched on again, the raw values of every running bar are
  recomputed at once.
- The committed state advances only at the session roll: `start_session` of the next day commits the running bars
  as that day's final daily bars (one row per ticker that had one; a day without any bar is not a session of the
  axis, as in the batch). Intraday updates never advance it.

Index and VIX: with `context.index_close`, D's level is the latest `index_level` given to `start_session`/`update`,
else the batch's rule: the series' value at D, else the last of the three previous sessions' values
(reindex + ffill(limit=3)). The configured VIX likewise. Without an index the market is the equal-weight mean of
the tickers' log returns; without a VIX series the batch derives it from the market returns, so neither may then be
given (ValueError).

Known departures from the batch, none of which occurs with complete bars: the running bar must be complete (finite
high, low, close, volume); history rows with a NaN high, low, close or volume are left out of every indicator (the
standard set's rule), where the batch leaves them out only of the indicators that read the missing field; the factor
is that of the last history row for every later session (a committed row's adj_close / close may differ from it by
an ulp).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from stockpred_core.features import alpha
from stockpred_core.features import indicators as ind
from stockpred_core.features.batch import RANKED, MarketContext, _market, to_wide
from stockpred_core.features.catalog import FEATURE_COLUMNS, LIBRARY_COLUMNS, RAW_COLUMNS
from stockpred_core.features.incremental import IncrementalIndicators
from stockpred_core.features.incremental.provisional import provisional

__all__ = ["IntradayFeatures"]

NAMES = IncrementalIndicators.names
ANNUALIZE = np.sqrt(252)
ADJ_RING = 20  # ret_20 / log_ret_20 / obv_change_20 read the value 20 sessions back
LOG_RET_RING = 59  # market_corr_60 / market_beta_60: 59 committed sessions + today (autocorr_20 reads the last 20)
LOG_DIFF_RING = 19  # volatility_20: 19 committed log(adj).diff() values + today
VOLUME_RING = 19  # obv_change_20's rolling volume sum
REGIME_TREND = 100  # market_regime: the level's SMA(100) ...
REGIME_SLOPE = 20  # ... and its change over 20 sessions
VIX_WINDOW = 20  # the derived VIX: 20-session realized vol of the market return
FILL_LIMIT = 3  # the batch's ffill(limit=3) of the configured index and VIX
LIB_RING = alpha.LOOKBACK - 1  # the library reads 60 committed sessions + today
LIB_FIELDS = ("open", "high", "low", "adj_close", "volume")
AXIS_KEPT = 600  # committed session dates remembered (the date axis a ticker's rebuild is laid on: > LOOKBACK_SESSIONS)
# The state `snapshot` saves: per-ticker arrays (first axis the universe, except `lib`: fields x universe x ring) ...
TICKER_STATE = ("factor", "adj", "log_ret", "log_diff", "obv", "volume", "lib")
# ... and the market's.
MARKET_STATE = ("market_ret", "level", "trend", "index_raw", "vix_raw")


def _tail(values: np.ndarray, size: int) -> np.ndarray:
    """The last `size` rows of a (dates x tickers) array as (tickers x size), or of a (dates,) array as (size,),
    chronological, NaN-padded on the left when the history is shorter."""
    values = np.asarray(values, dtype=np.float64)[-size:]
    out = np.full((*values.shape[1:], size), np.nan)
    out[..., size - len(values) :] = values.T
    return out


def _push(ring: np.ndarray, value: np.ndarray | float) -> None:
    """Append one session to a chronological ring (last axis), dropping the oldest."""
    ring[..., :-1] = ring[..., 1:]
    ring[..., -1] = value


def _var(window: np.ndarray, ddof: int) -> np.ndarray:
    """Variance along the last axis, NaN if any value is NaN; exactly 0 for a constant window, as pandas' rolling var
    answers (a two-pass variance would leave a rounding residue there)."""
    n = window.shape[-1]
    mean = window.mean(axis=-1, keepdims=True)
    var = ((window - mean) ** 2).sum(axis=-1) / (n - ddof)
    return np.where((window == window[..., :1]).all(axis=-1), 0.0, var)


def _corr_cov(x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`batch._rolling_corr_cov` for one window (last axis): beta = cov / var(m), corr = cov / sqrt(var(x) var(m)),
    population moments, cov = mean(x m) - mean(x) mean(m); NaN when any value is missing, non-finite -> NaN."""
    cov = (x * m).mean(axis=-1) - x.mean(axis=-1) * m.mean(axis=-1)
    var_x, var_m = _var(x, 0), _var(m, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = cov / var_m
        corr = cov / np.sqrt(var_x * var_m)
    return np.where(np.isfinite(beta), beta, np.nan), np.where(np.isfinite(corr), corr, np.nan)


def _filled(raw: float, ring: np.ndarray) -> float:
    """reindex + ffill(limit=len(ring)) at today: today's raw value, else the latest of the previous raw values."""
    if not np.isnan(raw):
        return raw
    seen = ring[~np.isnan(ring)]
    return float(seen[-1]) if len(seen) else np.nan


def _series_at(series: pd.Series | None, day: pd.Timestamp) -> float:
    """The configured series' value at `day` as the batch's reindex reads it (NaN when it has none)."""
    if series is None:
        return np.nan
    return float(series.reindex(pd.Index([day])).iloc[0])


class IntradayFeatures:
    """The daily feature rows of session D from running daily bars, equal to `compute_features` on the history plus
    those bars at D (see the module docstring). `from_history` warm-starts it, `start_session` begins a day (and
    commits the previous one), `update` sets running bars and returns the rows of the tickers it was given."""

    columns: tuple[str, ...] = (*FEATURE_COLUMNS, *RAW_COLUMNS, *LIBRARY_COLUMNS)

    def __init__(self, tickers: Sequence[str], context: MarketContext | None = None) -> None:
        """An empty universe (no history); `from_history` is the usual way in."""
        self.context = context or MarketContext()
        self.library = True  # compute the Alpha158-like columns (`set_library`); NaN while off
        self._indicators = IncrementalIndicators(tickers)
        self.tickers = self._indicators.tickers
        size = len(self.tickers)
        self._index = self._sorted(self.context.index_close)
        self._vix = self._sorted(self.context.vix)
        codes, _ = pd.factorize(pd.Index([self.context.sectors.get(t, "all") for t in self.tickers]))
        self._sector = codes.astype(np.int64)
        self._factor = np.ones(size)
        # Per-ticker rings on the history's date axis (chronological: the last column is the last committed session).
        self._adj = np.full((size, ADJ_RING), np.nan)
        self._log_ret = np.full((size, LOG_RET_RING), np.nan)  # log(adj / adj.shift(1)), columns["log_ret_1"]
        self._log_diff = np.full((size, LOG_DIFF_RING), np.nan)  # np.log(adj).diff(), volatility_20's returns
        self._obv = np.full((size, ADJ_RING), np.nan)
        self._volume = np.full((size, VOLUME_RING), np.nan)
        # The library's inputs: adjusted open, high, low, close (adj_close) and volume of the last 60 sessions.
        self._lib = np.full((len(LIB_FIELDS), size, LIB_RING), np.nan)
        # The market on the same axis.
        self._market_ret = np.full(LOG_RET_RING, np.nan)
        self._level = np.full(REGIME_TREND - 1, np.nan)
        self._trend = np.full(REGIME_SLOPE, np.nan)
        self._cum = 0.0  # the equal-weight level's log: ret.fillna(0).cumsum()
        self._index_raw = np.full(FILL_LIMIT, np.nan)
        self._vix_raw = np.full(FILL_LIMIT, np.nan)
        self.last_date: pd.Timestamp | None = None  # the last committed session
        self.axis = pd.DatetimeIndex([])  # the last AXIS_KEPT committed sessions, last_date last
        # The running session.
        self.session: pd.Timestamp | None = None
        self._bars = np.full((size, 5), np.nan)  # open, high, low, close, volume
        self._has_bar = np.zeros(size, dtype=bool)
        self._today_log_ret = np.full(size, np.nan)
        self._today_base = np.full((len(RANKED), size), np.nan)  # the ranked features' values at D
        self._today_lib = np.full((len(LIBRARY_COLUMNS), size), np.nan)  # the library's raw values at D
        self._index_today = self._vix_today = np.nan

    @staticmethod
    def _sorted(series: pd.Series | None) -> pd.Series | None:
        return series.sort_index() if series is not None and len(series) else None

    @classmethod
    def from_history(
        cls,
        bars: pd.DataFrame,
        context: MarketContext | None = None,
        tickers: Sequence[str] | None = None,
        axis: pd.DatetimeIndex | None = None,
    ) -> IntradayFeatures:
        """Warm start from long daily bars (date, ticker, open, high, low, close, adj_close, volume) dated before the
        first session: the lake's history, LOOKBACK_SESSIONS long or longer (the equal-weight market level and the
        EMA-type indicators remember all of it, so compare with the batch on the same history). The universe is
        `tickers` (default: the bars' tickers, sorted); bars of other tickers are left out. `axis`: the sessions of
        the history (default: the dates of `bars`); give it when `bars` hold only some tickers, whose dates may lack
        sessions where only other tickers traded (the rings are laid out on the whole universe's dates)."""
        universe = sorted(bars["ticker"].unique()) if tickers is None else list(tickers)
        feats = cls(universe, context)
        bars = bars[bars["ticker"].isin(feats.tickers)]
        if bars.empty:
            return feats
        fields = ("open", "high", "low", "close", "adj_close", "volume")
        wide = {field: to_wide(bars, field).reindex(columns=feats.tickers) for field in fields}
        if axis is not None:
            if not bars["date"].isin(axis).all():
                raise ValueError("the history has bars dated off the given axis")
            wide = {field: frame.reindex(index=pd.DatetimeIndex(axis, name="date")) for field, frame in wide.items()}
        feats._indicators = IncrementalIndicators.from_history(
            wide["high"], wide["low"], wide["close"], wide["volume"], tickers=feats.tickers
        )
        adj = wide["adj_close"]
        log_ret = np.log(adj / adj.shift(1))
        feats._adj = _tail(adj.to_numpy(), ADJ_RING)
        feats._log_ret = _tail(log_ret.to_numpy(), LOG_RET_RING)
        feats._log_diff = _tail(np.log(adj).diff().to_numpy(), LOG_DIFF_RING)
        feats._obv = _tail(ind.obv(wide["close"], wide["volume"]).to_numpy(), ADJ_RING)
        feats._volume = _tail(wide["volume"].to_numpy(), VOLUME_RING)
        scale = adj / wide["close"]  # the batch's adjustment of the library's prices (alpha.alpha_features)
        lib = (wide["open"] * scale, wide["high"] * scale, wide["low"] * scale, adj, wide["volume"])
        feats._lib = np.stack([_tail(x.to_numpy(), LIB_RING) for x in lib])
        level, market_ret = _market(log_ret, feats.context)
        feats._market_ret = _tail(market_ret.to_numpy(), LOG_RET_RING)
        feats._level = _tail(level.to_numpy(), REGIME_TREND - 1)
        trend = level.rolling(REGIME_TREND, min_periods=REGIME_TREND).mean()
        feats._trend = _tail(trend.to_numpy(), REGIME_SLOPE)
        feats._cum = float(market_ret.fillna(0.0).cumsum().iloc[-1])
        for series, ring in ((feats._index, feats._index_raw), (feats._vix, feats._vix_raw)):
            if series is not None:
                ring[:] = _tail(series.reindex(adj.index).to_numpy(), FILL_LIMIT)
        last = bars.sort_values("date", kind="stable").groupby("ticker").tail(1).set_index("ticker")
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = (last["adj_close"] / last["close"]).reindex(feats.tickers).to_numpy(dtype=np.float64)
        feats._factor = np.where(np.isfinite(factor), factor, 1.0)
        feats.last_date = pd.Timestamp(adj.index[-1])
        feats.axis = pd.DatetimeIndex(adj.index[-AXIS_KEPT:])
        return feats

    def positions(self, tickers: Sequence[str]) -> np.ndarray:
        """The universe positions of `tickers`; KeyError naming the tickers outside the universe."""
        return self._indicators.positions(tickers)

    def start_session(
        self, session: date | pd.Timestamp, index_level: float | None = None, vix: float | None = None
    ) -> None:
        """Begin session D (after the last history date and any earlier session). A running session is committed
        first: its running bars become that day's final daily bars (every state advances by one session), then D
        starts with no running bar. `index_level` / `vix`: D's values when known (see the module docstring)."""
        day = pd.Timestamp(session)
        latest = max((d for d in (self.last_date, self.session) if d is not None), default=None)
        if latest is not None and day <= latest:
            raise ValueError(f"session {day.date()} is not after the last session {latest.date()}")
        self._check_levels(index_level, vix)
        if self.session is not None:
            self._commit()
        self.session = day
        self._bars[:] = np.nan
        self._has_bar[:] = False
        self._today_log_ret[:] = np.nan
        self._today_base[:] = np.nan
        self._today_lib[:] = np.nan
        self._index_today = _series_at(self._index, day) if index_level is None else float(index_level)
        self._vix_today = _series_at(self._vix, day) if vix is None else float(vix)

    def update(
        self,
        tickers: Sequence[str],
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
        index_level: float | None = None,
        vix: float | None = None,
    ) -> np.ndarray:
        """Set the running bars of `tickers` (arrays aligned with them: each ticker's aggregate of the day so far) and
        return their feature rows (len(tickers) x len(columns)): compute_features on the history plus the running
        bars of every ticker that has one, at D. `index_level` / `vix` update D's index level / VIX (None: keep the
        latest given, else the batch's rule). O(1) per ticker of the update plus O(N) for D's cross-section."""
        if self.session is None:
            raise RuntimeError("no session is running: call start_session(day) before update()")
        rows = self.positions(tickers)
        fields = [np.asarray(a, dtype=np.float64) for a in (open, high, low, close, volume)]
        if any(a.shape != rows.shape for a in fields):
            shapes = [a.shape for a in fields]
            raise ValueError(f"open, high, low, close, volume must be 1-d as long as tickers {rows.shape}: {shapes}")
        if len(np.unique(rows)) != len(rows):
            raise ValueError("update lists a ticker twice")
        bar = np.stack(fields)  # (5, len(rows)): each field a contiguous row
        incomplete = ~np.isfinite(bar[1:]).all(axis=0)
        if incomplete.any():
            bad = list(self.tickers[rows[incomplete]][:5])
            raise ValueError(f"running bars need a finite high, low, close and volume: {bad}")
        self._check_levels(index_level, vix)
        if index_level is not None:
            self._index_today = float(index_level)
        if vix is not None:
            self._vix_today = float(vix)
        self._bars[rows] = bar.T
        self._has_bar[rows] = True
        values = self._ticker_values(rows, *bar[1:])
        self._today_log_ret[rows] = values["log_ret_1"]
        self._today_base[:, rows] = np.stack([values[base] for base in RANKED])
        market = self._market_today()
        values.update(self._context_values(rows, values, market))
        values.update(self._cross_section(rows))
        values.update(self._library(rows, bar))
        out = np.column_stack([values[name] for name in self.columns])
        out[np.isinf(out)] = np.nan
        return out

    def session_frame(self) -> pd.DataFrame:
        """The running bars as long daily rows (date, ticker, open, high, low, close, adj_close, volume): what the
        batch would read for D; sorted by ticker."""
        rows = np.flatnonzero(self._has_bar)
        bars = self._bars[rows]
        frame = pd.DataFrame(
            {
                "date": pd.Series([self.session] * len(rows), dtype="datetime64[ns]"),
                "ticker": self.tickers[rows].to_numpy(dtype=object),
                "open": bars[:, 0],
                "high": bars[:, 1],
                "low": bars[:, 2],
                "close": bars[:, 3],
                "adj_close": bars[:, 3] * self._factor[rows],
                "volume": bars[:, 4],
            }
        )
        return frame.sort_values("ticker", ignore_index=True)

    def commit(self) -> None:
        """End the running session: its running bars become its final daily bars (`start_session` of the next day
        does this too). The daily increment's last step, before `snapshot`."""
        if self.session is None:
            raise RuntimeError("no session is running")
        self._commit()
        self.session = None

    def snapshot(self) -> dict[str, np.ndarray]:
        """The committed state as named arrays (between sessions only): with the same context, `restore` continues
        exactly where this object would. Kilobytes per ticker (~5 KB: rings of 60 sessions for the library)."""
        if self.session is not None:
            raise RuntimeError("a session is running: commit() it before a snapshot")
        if self.last_date is None:
            raise RuntimeError("nothing is committed yet")
        return self._arrays()

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {
            "tickers": np.asarray(self.tickers, dtype=str),
            "indicator_state": self._indicators.state,
            "indicator_count": self._indicators.count,
            "indicator_values": self._indicators.values,
            "cum": np.array(self._cum),
            "last_date": np.array(pd.Timestamp(self.last_date).to_datetime64()),
            "axis": self.axis.to_numpy(dtype="datetime64[ns]"),
            "library": np.array(self.library),
        }
        out.update({name: getattr(self, f"_{name}") for name in (*TICKER_STATE, *MARKET_STATE)})
        return out

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray], context: MarketContext | None = None) -> IntradayFeatures:
        """The object a `snapshot` was taken of, with `context` (index, VIX and sectors: the ones it ran with)."""
        feats = cls([str(t) for t in arrays["tickers"]], context)
        indicators = feats._indicators
        indicators.state, indicators.count = np.array(arrays["indicator_state"]), np.array(arrays["indicator_count"])
        indicators.values = np.array(arrays["indicator_values"])
        for name in (*TICKER_STATE, *MARKET_STATE):
            saved, blank = np.array(arrays[name], dtype=np.float64), getattr(feats, f"_{name}")
            if saved.shape != blank.shape:
                raise ValueError(f"state {name!r} has shape {saved.shape}, expected {blank.shape}")
            setattr(feats, f"_{name}", saved)
        feats._cum = float(arrays["cum"].item())
        feats.last_date = pd.Timestamp(arrays["last_date"].item())
        feats.axis = pd.DatetimeIndex(arrays["axis"])
        feats.library = bool(arrays["library"].item())
        return feats

    def add_tickers(self, tickers: Sequence[str]) -> None:
        """Widen the universe (between sessions) by tickers without history: no bar so far, as a ticker is in the
        batch's wide frames before its first bar."""
        if self.session is not None:
            raise RuntimeError("the universe changes between sessions only")
        new = pd.Index(list(tickers)).difference(self.tickers)
        if not len(new):
            return
        snapshot, size = self._arrays(), len(new)
        grown = type(self)([*self.tickers, *new], self.context)
        state = grown._indicators
        state.state[:-size] = snapshot["indicator_state"]
        state.count[:-size] = snapshot["indicator_count"]
        state.values[:-size] = snapshot["indicator_values"]
        for name in TICKER_STATE:
            target = getattr(grown, f"_{name}")
            if target.ndim == 3:
                target[:, :-size] = snapshot[name]
            else:
                target[:-size] = snapshot[name]
        for name in MARKET_STATE:
            setattr(grown, f"_{name}", snapshot[name])
        grown._cum, grown.last_date, grown.axis, grown.library = self._cum, self.last_date, self.axis, self.library
        self.__dict__.update(grown.__dict__)

    def adopt(self, other: IntradayFeatures) -> None:
        """Take the per-ticker state of `other`'s tickers from `other` (a rebuild of some tickers from their
        re-adjusted history, on this object's axis); the market's state stays this object's."""
        if self.session is not None or other.session is not None:
            raise RuntimeError("states are exchanged between sessions only")
        if other.last_date != self.last_date:
            raise ValueError(f"the rebuilt state ends {other.last_date}, this one {self.last_date}")
        rows = self.positions(other.tickers)
        mine, theirs = self._indicators, other._indicators
        mine.state[rows], mine.count[rows], mine.values[rows] = theirs.state, theirs.count, theirs.values
        for name in TICKER_STATE:
            target, source = getattr(self, f"_{name}"), getattr(other, f"_{name}")
            if target.ndim == 3:
                target[:, rows] = source
            else:
                target[rows] = source

    # -- the pieces of a row ------------------------------------------------------------------------------------------

    def _check_levels(self, index_level: float | None, vix: float | None) -> None:
        if index_level is not None and self._index is None:
            raise ValueError("index_level given but the context has no index: the market is the equal-weight mean")
        if vix is not None and self._vix is None:
            raise ValueError("vix given but the context has no VIX series: vix is derived from the market returns")

    def _ticker_values(self, rows: np.ndarray, high, low, close, volume) -> dict[str, np.ndarray]:
        """The per-ticker features at D (`batch._indicator_columns`) for the running bars of `rows`."""
        indicators = np.empty((len(rows), len(NAMES)))
        volume_sma = np.empty(len(rows))
        state, count = self._indicators.state, self._indicators.count
        provisional(state, count, rows, high, low, close, volume, indicators, volume_sma)
        y = dict(zip(NAMES, indicators.T, strict=True))
        adj = close * self._factor[rows]
        past = self._adj[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = {f"ret_{n}": adj / past[:, -n] - 1 for n in (1, 5, 20)}
            log_returns = {f"log_ret_{n}": np.log(adj / past[:, -n]) for n in (1, 5, 20)}
            log_diff = np.column_stack([self._log_diff[rows], np.log(adj) - np.log(past[:, -1])])
            volume_sum = np.column_stack([self._volume[rows], volume]).sum(axis=1)
            obv_change = (y["obv"] - self._obv[rows, -ADJ_RING]) / np.where(volume_sum == 0.0, np.nan, volume_sum)
            return {
                **returns,
                **log_returns,
                "volatility_20": np.sqrt(_var(log_diff, 1)) * ANNUALIZE,
                "rsi_14": y["rsi_14"],
                "macd_pct": y["macd"] / close,
                "macd_hist_pct": y["macd_hist"] / close,
                "stoch_k": y["stoch_k"],
                "stoch_d": y["stoch_d"],
                **{f"sma_{n}_gap": close / y[f"sma_{n}"] - 1.0 for n in (10, 20, 50)},
                **{f"ema_{n}_gap": close / y[f"ema_{n}"] - 1.0 for n in (12, 26)},
                "adx_14": y["adx_14"],
                "plus_di_14": y["plus_di_14"],
                "minus_di_14": y["minus_di_14"],
                "bb_pctb": y["bb_pctb"],
                "bb_width": y["bb_width"],
                "atr_pct": y["atr_14"] / close,
                "obv_change_20": obv_change,
                "cmf_20": y["cmf_20"],
                "volume_ratio_20": volume / np.where(volume_sma == 0.0, np.nan, volume_sma),
                "close": close,
                "adj_close": adj,
                **{name: y[name] for name in ("sma_10", "sma_20", "sma_50", "ema_12", "ema_26")},
                **{name: y[name] for name in ("macd", "macd_signal", "atr_14", "bb_middle", "bb_upper", "bb_lower")},
                "obv": y["obv"],
            }

    def _market_today(self) -> dict[str, float]:
        """D's market (`batch._market`, `_regime`, the VIX) from the rings and today's values of every ticker."""
        if self._index is not None:
            raw = self._index_today
            level = _filled(raw, self._index_raw)
            ret, cum = np.log(level) - np.log(self._level[-1]), self._cum
        else:
            raw = np.nan
            returns = self._today_log_ret[~np.isnan(self._today_log_ret)]
            ret = returns.sum() / len(returns) if len(returns) else np.nan
            cum = self._cum + (0.0 if np.isnan(ret) else ret)
            level = np.exp(cum)
        levels = np.append(self._level, level)
        trend = levels.mean() if not np.isnan(levels).any() else np.nan
        slope = trend / self._trend[-REGIME_SLOPE] - 1.0
        if np.isnan(slope):
            regime = np.nan
        elif level > trend and slope > 0:
            regime = 1.0
        elif level < trend and slope < 0:
            regime = -1.0
        else:
            regime = 0.0
        if self._vix is not None:
            vix_raw = self._vix_today
            vix = _filled(vix_raw, self._vix_raw)
        else:
            vix_raw = np.nan
            window = np.append(self._market_ret[-(VIX_WINDOW - 1) :], ret)
            vix = 100.0 * np.sqrt(_var(window, 1)) * ANNUALIZE
        return {
            "ret": float(ret),
            "level": float(level),
            "cum": float(cum),
            "trend": float(trend),
            "regime": regime,
            "vix": float(vix),
            "index_raw": float(raw),
            "vix_raw": float(vix_raw),
        }

    def _context_values(self, rows: np.ndarray, values: dict, market: dict) -> dict[str, np.ndarray]:
        """`batch._context_columns` except the cross-section: beta and correlation to the market, autocorrelation,
        regime and VIX for `rows`."""
        log_ret = values["log_ret_1"]
        x = np.column_stack([self._log_ret[rows], log_ret])
        beta, corr = _corr_cov(x, np.append(self._market_ret, market["ret"]))
        _, autocorr = _corr_cov(x[:, -20:], self._log_ret[rows, -20:])
        size = len(rows)
        return {
            "market_corr_60": corr,
            "market_beta_60": beta,
            "autocorr_20": autocorr,
            "market_regime": np.full(size, market["regime"]),
            "vix": np.full(size, market["vix"]),
        }

    def _cross_section(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """D's cross-sectional features for `rows` over the whole universe (`batch._cross_section`: percentile rank
        with ties averaged, z-score with ddof=1 clipped to +-5; and sector_rel_20): O(N) per ranked feature plus one
        sort of its N values, whose binary searches give the ranks of the rows asked for."""
        base = self._today_base  # (ranked features, N), NaN for tickers without a running bar
        missing = np.isnan(base)
        count = (~missing).sum(axis=1)
        x = base[:, rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            # pandas' nanmean / nanvar: NaN filled with 0 in the sums (an inf stays and spoils the row, as there)
            mean = np.where(missing, 0.0, base).sum(axis=1) / count
            squares = np.where(missing, 0.0, (base - mean[:, None]) ** 2).sum(axis=1)
            std = np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)
            z = np.clip((x - mean[:, None]) / std[:, None], -5, 5)
        ordered = np.sort(base, axis=1)  # NaN last
        rank = np.empty_like(x)
        for j, present in enumerate(ordered):
            present = present[: count[j]]
            below, through = np.searchsorted(present, x[j], side="left"), np.searchsorted(present, x[j], side="right")
            rank[j] = (below + 1 + through) / 2 / max(count[j], 1)
        rank[np.isnan(x)] = np.nan
        out = {}
        for j, name in enumerate(RANKED):
            out[f"{name}_rank"], out[f"{name}_z"] = rank[j], z[j]
        ret_20 = base[RANKED.index("ret_20")]
        present = ~np.isnan(ret_20)
        groups = self._sector.max(initial=-1) + 1
        totals = np.bincount(self._sector[present], weights=ret_20[present], minlength=groups)
        counts = np.bincount(self._sector[present], minlength=groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            sector_mean = totals / counts
        out["sector_rel_20"] = ret_20[rows] - sector_mean[self._sector[rows]]
        return out

    def _library_bars(self, rows: np.ndarray, bar: np.ndarray) -> np.ndarray:
        """The library's inputs of running bars `bar` (open, high, low, close, volume x rows): prices scaled by
        each ticker's factor (close x factor is its adj_close), volume as is."""
        factor = self._factor[rows]
        return np.vstack([bar[:4] * factor, bar[4:5]])

    def set_library(self, on: bool) -> None:
        """Compute the library's columns from now on (True) or leave them NaN (False: they cost ~25 ms per update of
        1,000 tickers, ~6x the rest of the row). Switched on during a session, the raw values of every ticker with a
        running bar are computed at once, so the next update's cross-section is the whole session's."""
        if on and not self.library:
            rows = np.flatnonzero(self._has_bar)
            if len(rows):
                self._raw_library(rows, self._bars[rows].T)
        self.library = on
        if not on:
            self._today_lib[:] = np.nan

    def _raw_library(self, rows: np.ndarray, bar: np.ndarray) -> None:
        """The raw library values of `rows` from their last 60 committed sessions plus running bars `bar`, kept
        for D's cross-section."""
        today = self._library_bars(rows, bar)
        windows = [np.vstack([ring[rows].T, now[None, :]]) for ring, now in zip(self._lib, today, strict=True)]
        raw = alpha.raw_alpha_arrays(*windows, rows=1)
        self._today_lib[:, rows] = np.vstack([raw[name] for name in LIBRARY_COLUMNS])

    def _library(self, rows: np.ndarray, bar: np.ndarray) -> dict[str, np.ndarray]:
        """D's library values of `rows` (NaN while `library` is off): raw from their last 60 committed sessions plus
        the running bar, robust-z-scored across every ticker with a running bar (`alpha.alpha_features`). O(k)
        window statistics for the k tickers of the update, O(N) per column for the cross-section."""
        if not self.library:
            return {name: np.full(len(rows), np.nan) for name in LIBRARY_COLUMNS}
        self._raw_library(rows, bar)
        z = alpha.cross_sectional_robust_z(pd.DataFrame(self._today_lib)).to_numpy()  # one row per column
        return {name: z[j, rows] for j, name in enumerate(LIBRARY_COLUMNS)}

    def _commit(self) -> None:
        """Make the running bars the session's final daily bars: advance the indicators and push every ring."""
        rows = np.flatnonzero(self._has_bar)
        if not len(rows):
            return  # no bar: the day is not a session of the axis
        market = self._market_today()
        high, low, close, volume = np.ascontiguousarray(self._bars[rows, 1:].T)
        self._indicators.update(rows, high, low, close, volume)
        size = len(self.tickers)
        adj, obv, traded = np.full(size, np.nan), np.full(size, np.nan), np.full(size, np.nan)
        adj[rows] = close * self._factor[rows]
        obv[rows] = self._indicators.values[rows, NAMES.index("obv")]
        traded[rows] = volume
        previous = self._adj[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            _push(self._log_ret, np.log(adj / previous))
            _push(self._log_diff, np.log(adj) - np.log(previous))
        _push(self._adj, adj)
        _push(self._obv, obv)
        _push(self._volume, traded)
        lib = np.full((len(LIB_FIELDS), size), np.nan)
        lib[:, rows] = self._library_bars(rows, self._bars[rows].T)
        for ring, value in zip(self._lib, lib, strict=True):
            _push(ring, value)
        _push(self._market_ret, market["ret"])
        _push(self._level, market["level"])
        _push(self._trend, market["trend"])
        _push(self._index_raw, market["index_raw"])
        _push(self._vix_raw, market["vix_raw"])
        self._cum = market["cum"]
        self.last_date = self.session
        self.axis = self.axis.append(pd.DatetimeIndex([self.session]))[-AXIS_KEPT:]
