"""The daily increment: session D's feature rows from the state carried over from the session before, at the cost
of one day's bars instead of the whole look-back (`compute_features` re-reads LOOKBACK_SESSIONS sessions of every
ticker for one day's rows).

The state is `IntradayFeatures`' committed state (indicator recursions, the rings of the windowed statistics and of
the library, the market's rings) after session D-1, saved with the corporate actions its prices were adjusted with.
Session D's final bars go through the same `update` the intraday path uses, once, for every ticker at once; then the
session is committed and the state saved for D+1. The rows equal `compute_features` on the history plus D's bars,
to rounding (tests/core/features/test_daily.py; through the assets on the real S&P 500 file in
tests/assets/test_feature_skew.py).

Prices are back-adjusted relative to the last bar (`data/adjustments.py`): a split or dividend of ticker T on D (or
one first learned on D, or corrected) rescales T's whole history, so T's carried state no longer holds. Those
tickers are rebuilt from their own re-adjusted history (`rebuild_tickers`); every other ticker's history is the
same relative to D as to D-1 (its factor for D is 1), so its state carries over. The adjustment is thus computed once
per event, for the tickers it touches.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.data.adjustments import adjust
from stockpred_core.features.batch import LOOKBACK_SESSIONS, TABLE_COLUMNS, MarketContext
from stockpred_core.features.catalog import FEATURE_SET_VERSION
from stockpred_core.features.intraday import IntradayFeatures

__all__ = [
    "STATE_FORMAT",
    "DailyState",
    "advance_session",
    "changed_tickers",
    "context_fingerprint",
    "increment",
    "state_from_bars",
]

# (start, end, tickers or None for all) -> validated (unadjusted) bars dated in [start, end]
BarReader = Callable[[pd.Timestamp, pd.Timestamp, list[str] | None], pd.DataFrame]

STATE_FORMAT = 1  # bump when the saved arrays change meaning
EVENT_KEY = ["ticker", "date", "kind", "value"]
FINGERPRINT_SESSIONS = 160  # the index / VIX values the market's rings read (regime: 100 + 20 sessions, corr: 60)


def context_fingerprint(context: MarketContext, last_date: pd.Timestamp) -> str:
    """A hash of what the market state was computed from besides the bars: whether an index and a VIX series were
    configured, and their values over the sessions the rings still read. A restored state is used only with the
    same fingerprint (a corrected or newly configured index file rebuilds it)."""
    digest = hashlib.sha256(f"format={STATE_FORMAT};features={FEATURE_SET_VERSION}".encode())
    start = pd.Timestamp(last_date) - pd.Timedelta(days=int(FINGERPRINT_SESSIONS * 1.6) + 10)
    for name, series in (("index", context.index_close), ("vix", context.vix)):
        if series is None or not len(series):
            digest.update(f"{name}=none;".encode())
            continue
        window = series.sort_index().loc[start:last_date]
        digest.update(f"{name}=".encode())
        digest.update(np.ascontiguousarray(window.index.to_numpy(dtype="datetime64[ns]")).tobytes())
        digest.update(np.ascontiguousarray(window.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()[:16]


class DailyState:
    """A committed `IntradayFeatures` plus the corporate actions its history was adjusted with and the context
    fingerprint; saved as one .npz (`dumps` / `loads`)."""

    def __init__(
        self, features: IntradayFeatures, events: pd.DataFrame, fingerprint: str, saved_at: float | None = None
    ) -> None:
        self.features = features
        self.events = _event_rows(events)
        self.fingerprint = fingerprint
        # seconds since the epoch: when its inputs were read (set by the caller before reading them; the dump's time
        # otherwise); inputs written later make it stale
        self.saved_at = saved_at

    @property
    def last_date(self) -> pd.Timestamp:
        return self.features.last_date

    def dumps(self) -> bytes:
        arrays = self.features.snapshot()
        events = self.events
        arrays.update(
            {
                "format": np.array(STATE_FORMAT),
                "fingerprint": np.array(self.fingerprint),
                "saved_at": np.array(time.time() if self.saved_at is None else self.saved_at),
                "event_ticker": events["ticker"].to_numpy(dtype=str),
                "event_date": events["date"].to_numpy(dtype="datetime64[ns]"),
                "event_kind": events["kind"].to_numpy(dtype=str),
                "event_value": events["value"].to_numpy(dtype=np.float64),
            }
        )
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def loads(cls, data: bytes, context: MarketContext) -> DailyState:
        """The saved state, or ValueError when it was saved by another format."""
        with np.load(io.BytesIO(data), allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        if int(arrays.get("format", -1)) != STATE_FORMAT:
            raise ValueError(f"state format {arrays.get('format')} is not {STATE_FORMAT}")
        events = pd.DataFrame(
            {
                "ticker": arrays["event_ticker"].astype(object),
                "date": arrays["event_date"],
                "kind": arrays["event_kind"].astype(object),
                "value": arrays["event_value"],
            }
        )
        features = IntradayFeatures.restore(arrays, context)
        return cls(features, events, str(arrays["fingerprint"]), float(arrays["saved_at"].item()))


def _event_rows(events: pd.DataFrame | None) -> pd.DataFrame:
    if events is None or events.empty:
        return pd.DataFrame({"ticker": [], "date": pd.Series([], dtype="datetime64[ns]"), "kind": [], "value": []})
    out = events[EVENT_KEY].copy()
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["value"] = out["value"].astype(np.float64)
    return out.sort_values(EVENT_KEY, ignore_index=True)


def changed_tickers(known: pd.DataFrame, now: pd.DataFrame, after: pd.Timestamp) -> list[str]:
    """Tickers whose corporate actions dated after `after` (the first session of D's look-back: `adjust` ignores
    earlier ones) differ between what a state was built with (`known`) and what D's run reads (`now`): an event
    on D, one recorded late, corrected or withdrawn."""
    return sorted(_differences(known, now, after)["ticker"].unique())


def _differences(known: pd.DataFrame, now: pd.DataFrame, after: pd.Timestamp) -> pd.DataFrame:
    a, b = (_event_rows(e) for e in (known, now))
    a, b = a[a["date"] > after], b[b["date"] > after]
    both = a.merge(b, on=EVENT_KEY, how="outer", indicator=True)
    return both[both["_merge"] != "both"]


def advance_session(features: IntradayFeatures, day: pd.Timestamp, bars: pd.DataFrame) -> pd.DataFrame:
    """Session `day`'s feature rows (TABLE_COLUMNS, sorted by ticker) from its final bars (adjusted relative to
    `day`: the day's own prices are its raw prices), and the state committed through `day`. Tickers new to the
    universe join it without history."""
    day = pd.Timestamp(day)
    if (bars["date"] != day).any():
        raise ValueError(f"bars of other days than {day.date()} given for session {day.date()}")
    bars = bars.sort_values("ticker", ignore_index=True)
    features.add_tickers(bars["ticker"].unique())
    if bars.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)  # no bar: not a session of the axis, nothing to commit
    features.start_session(day)
    fields = [bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
    values = features.update(bars["ticker"].tolist(), *fields)
    features.commit()
    rows = pd.DataFrame(values, columns=list(features.columns), copy=False)
    rows.insert(0, "ticker", bars["ticker"].to_numpy(dtype=object))
    rows.insert(0, "date", bars["date"].to_numpy(dtype="datetime64[ns]"))
    rows["feature_set_version"] = FEATURE_SET_VERSION
    return rows[TABLE_COLUMNS]


def state_from_bars(bars: pd.DataFrame, events: pd.DataFrame, context: MarketContext) -> DailyState:
    """The state after the last session of `bars` (every ticker's look-back, adjusted with `events` relative to that
    session, as `adjust` gives them): the way in without a carried state, at the look-back's whole cost, once."""
    features = IntradayFeatures.from_history(bars, context)
    if features.last_date is None:
        raise ValueError("no bars: no state to build")
    events, last = _event_rows(events), features.last_date
    return DailyState(features, events[events["date"] <= last], context_fingerprint(context, last))


def increment(
    state: DailyState | None,
    day: pd.Timestamp,
    read_bars: BarReader,
    events: pd.DataFrame,
    context: MarketContext,
    lookback: int = LOOKBACK_SESSIONS,
) -> tuple[pd.DataFrame, DailyState, dict]:
    """Session `day`'s feature rows, the state after it and what the step did (`carried`: the state was used,
    `rebuilt`: tickers rebuilt from their history). `state`: the state after the previous session (None, or one
    saved with another context, is rebuilt from the whole look-back). `events`: the corporate actions known at
    `day` (at least those dated in its look-back). `lookback`: the sessions read before `day`."""
    day = pd.Timestamp(day)
    start = calendar.lookback_start(day, lookback)
    events = _event_rows(events)
    events = events[(events["date"] > start) & (events["date"] <= day)]
    today = adjust(read_bars(day, day, None), events)  # its own prices: every factor at `day` is 1
    report = {"carried": False, "rebuilt": []}
    if state is not None and state.fingerprint != context_fingerprint(context, state.last_date):
        state = None  # saved with another index or VIX (or feature set): its market rings do not hold
    changed: list[str] = []
    if state is not None:
        differences = _differences(state.events, events, start)
        changed = sorted(differences["ticker"].unique())
        if context.index_close is None and (differences["date"] < day).any():
            # an event learned late (or corrected) changes the ticker's past returns, hence the equal-weight
            # market's past returns that every ticker's beta and correlation read: start over
            state = None
    if state is not None:
        try:
            if changed:
                _rebuild(state, changed, day, start, read_bars, events, context)
            report = {"carried": True, "rebuilt": changed}
        except ValueError:  # the lake holds bars the state never saw (rewritten history): start over
            state = None
    if state is None:
        history = adjust(read_bars(start, day, None), events)
        features = IntradayFeatures.from_history(history[history["date"] < day], context)
        state = DailyState(features, events, "")
    rows = advance_session(state.features, day, today)
    last = state.features.last_date
    return rows, DailyState(state.features, events, context_fingerprint(context, last) if last else ""), report


def _rebuild(
    state: DailyState,
    tickers: list[str],
    day: pd.Timestamp,
    start: pd.Timestamp,
    read_bars: BarReader,
    events: pd.DataFrame,
    context: MarketContext,
) -> None:
    """Replace the state of `tickers` with one built from their history adjusted with `events` relative to `day`."""
    features = state.features
    axis = features.axis[features.axis >= start]
    # adjusted on the universe's axis: a session the ticker missed is a NaN previous close there, as in the batch
    history = adjust(
        read_bars(start, day, tickers),
        events[events["ticker"].isin(tickers)],
        axis=axis.append(pd.DatetimeIndex([day])),
    )
    history = history[history["date"] < day]
    rebuilt = IntradayFeatures.from_history(history, context, tickers=tickers, axis=axis)
    rebuilt.last_date = features.last_date
    features.add_tickers([t for t in tickers if t not in set(features.tickers)])
    features.adopt(rebuilt)
