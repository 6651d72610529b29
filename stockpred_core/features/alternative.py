"""The alternative feature set per (date, ticker): news and social sentiment and volume, filing events, insider
buying and the macro context (the columns and definitions of `alternative_catalog`), point in time.

Every raw item carries `date`, the session it first counts for (`stockpred_core.data.alternative.session_for`: the
first session whose close is after the item became public). The features of session D read items with date <= D
only, so nothing published after D's close can change them. Windows count exchange sessions, except the calendar-day
windows of filings coverage (365 days) and insider buying (90 days), which take the items of the sessions dated in
(D - days, D].

Decisions the catalog leaves open:
- filings: days_since_8k/10q/10k count original reports only: an amendment (8-K/A, 10-K/A) corrects an earlier
  report rather than bringing a new one, so it does not reset the clock. A filing more than ALT_LOOKBACK_SESSIONS
  sessions back counts as none (NaN), so a value never depends on how much history a run happened to read;
- insider_net_buy_90 weighs transactions by shares (a sale executed in many lots counts once per share, not per lot);
  codes other than P and S (awards, option exercises, gifts, tax withholding) are not open-market trades;
- macro: a series is known at D while its latest published observation is recent (daily series: 14 calendar days,
  monthly: 100; a discontinued series such as TEDRATE stops being known instead of freezing at its last value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.data import calendar
from stockpred_core.data.macro_calendar import SERIES
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION

# Sessions of raw items before the first day computed that its features read: CPI YoY needs the value of 12 months
# before the latest published month (up to ~13 months back), days_since_* looks this far back.
ALT_LOOKBACK_SESSIONS = 300
TEXT_WINDOW = 21  # coverage and the volume baseline
SENTIMENT_WINDOW = 5
FILINGS_COVERAGE_DAYS = 365
INSIDER_DAYS = 90
FILING_FORMS = {"8-K": "filings_days_since_8k", "10-Q": "filings_days_since_10q", "10-K": "filings_days_since_10k"}
MACRO_SERIES = ("VIXCLS", "DGS10", "TEDRATE", "CPIAUCSL", "UNRATE")
MACRO_MAX_AGE_DAYS = {"daily": 14, "monthly": 100}
_MACRO_HISTORY_DAYS = 550  # an observation older than this before the look-back changes no value (staleness, CPI base)

_REQUIRED = {
    "news": ["date", "ticker", "sentiment"],
    "social": ["date", "ticker", "sentiment"],
    "filings": ["date", "ticker", "form"],
    "insider": ["date", "ticker", "code", "shares"],
    "macro": ["date", "series", "observed_on", "value"],
}


@dataclass
class AltItems:
    """Raw items per kind in `stockpred_core.data.alternative.COLUMNS` (news and social with a `sentiment` column in
    [-1, 1], NaN where a text has none); None where the family has no source (its mask is then 0)."""

    news: pd.DataFrame | None = None
    social: pd.DataFrame | None = None
    filings: pd.DataFrame | None = None
    insider: pd.DataFrame | None = None
    macro: pd.DataFrame | None = None


@dataclass(frozen=True)
class _Axis:
    """Sessions (rows) x tickers (columns) of the arrays every feature is computed on."""

    sessions: pd.DatetimeIndex
    tickers: pd.Index

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.sessions), len(self.tickers)

    def nan(self) -> np.ndarray:
        return np.full(self.shape, np.nan)

    def place(self, kind: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """The rows of grid tickers dated inside the axis, with their session (row) and ticker (column) positions.
        A date that is not a session counts from the next session."""
        dates = _dates(kind, frame)
        rows = self.sessions.searchsorted(dates.to_numpy(), side="left")
        cols = self.tickers.get_indexer(frame["ticker"].astype(str))
        keep = (cols >= 0) & (rows < len(self.sessions)) & (dates >= self.sessions[0]).to_numpy()
        return frame[keep], rows[keep], cols[keep]

    def accumulate(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per (session, ticker): the number of items, or the sum of `weights`."""
        size = self.shape[0] * self.shape[1]
        return (
            np.bincount(rows * self.shape[1] + cols, weights=weights, minlength=size).reshape(self.shape).astype(float)
        )


def _check_columns(kind: str, frame: pd.DataFrame) -> None:
    missing = [c for c in _REQUIRED[kind] if c not in frame.columns]
    if missing:
        raise ValueError(f"{kind} items lack the column(s) {missing}")


def _dates(kind: str, frame: pd.DataFrame) -> pd.Series:
    dates = pd.to_datetime(frame["date"]).dt.normalize()
    if dates.isna().any():
        raise ValueError(f"{kind}: {int(dates.isna().sum())} item(s) without a date (the session they count for)")
    return dates


def _trailing_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of rows t-window+1..t, added lag by lag so a row's value depends on those rows alone."""
    out = values.copy()
    for lag in range(1, min(window, len(values))):
        out[lag:] += values[:-lag]
    return out


def _calendar_sum(values: np.ndarray, sessions: pd.DatetimeIndex, days: int) -> np.ndarray:
    """Sum of the rows of the sessions dated in (D - days, D]."""
    first = sessions.searchsorted(sessions - pd.Timedelta(days=days), side="right")
    span = np.arange(len(sessions)) - first
    out = values.copy()
    for lag in range(1, int(span.max(initial=0)) + 1):
        inside = span[lag:] >= lag
        out[lag:][inside] += values[:-lag][inside]
    return out


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _text_features(family: str, frame: pd.DataFrame | None, axis: _Axis) -> dict[str, np.ndarray]:
    names = [c for c in ALT_COLUMNS if c.startswith(f"{family}_")]
    if frame is None:
        return {**{name: axis.nan() for name in names}, f"{family}_covered": np.zeros(axis.shape)}
    _check_columns(family, frame)
    frame, rows, cols = axis.place(family, frame)
    sentiment = pd.to_numeric(frame["sentiment"], errors="coerce").to_numpy(dtype=float)
    scored = ~np.isnan(sentiment)
    count = axis.accumulate(rows, cols)
    scored_count = axis.accumulate(rows[scored], cols[scored])
    scored_sum = axis.accumulate(rows[scored], cols[scored], sentiment[scored])
    mean = _ratio(scored_sum, scored_count)
    deviation = (sentiment[scored] - mean[rows[scored], cols[scored]]) ** 2
    variance = _ratio(axis.accumulate(rows[scored], cols[scored], deviation), scored_count - 1)
    prior_mean = (_trailing_sum(count, TEXT_WINDOW + 1) - count) / TEXT_WINDOW
    covered = _trailing_sum(count, TEXT_WINDOW) > 0
    values = {
        f"{family}_sentiment": mean,
        f"{family}_sentiment_std": np.sqrt(variance),
        f"{family}_sentiment_5": _ratio(
            _trailing_sum(scored_sum, SENTIMENT_WINDOW), _trailing_sum(scored_count, SENTIMENT_WINDOW)
        ),
        f"{family}_count": np.log1p(count),
        f"{family}_volume_surprise": np.log((1 + count) / (1 + prior_mean)),
    }
    return {**{name: np.where(covered, v, np.nan) for name, v in values.items()}, f"{family}_covered": covered * 1.0}


def _days_since(filed: np.ndarray) -> np.ndarray:
    """Sessions since the last row with a filing (0 on its own session), NaN with none within the look-back."""
    steps = np.arange(len(filed))[:, None]
    last = np.maximum.accumulate(np.where(filed > 0, steps, -1), axis=0)
    days = (steps - last).astype(float)
    return np.where((last >= 0) & (days <= ALT_LOOKBACK_SESSIONS), days, np.nan)


def _filing_features(filings: pd.DataFrame | None, insider: pd.DataFrame | None, axis: _Axis) -> dict:
    names = [c for c in ALT_COLUMNS if c.startswith("filings_")]
    if filings is None:
        return {**{name: axis.nan() for name in names}, "filings_covered": np.zeros(axis.shape)}
    _check_columns("filings", filings)
    filings, rows, cols = axis.place("filings", filings)
    forms = filings["form"].astype(str).str.strip().str.upper().to_numpy()
    values = {
        column: _days_since(axis.accumulate(rows[forms == form], cols[forms == form]))
        for form, column in FILING_FORMS.items()
    }
    covered = _calendar_sum(axis.accumulate(rows, cols), axis.sessions, FILINGS_COVERAGE_DAYS) > 0
    values["filings_insider_net_buy_90"] = _insider_net_buy(insider, axis)
    return {**{name: np.where(covered, v, np.nan) for name, v in values.items()}, "filings_covered": covered * 1.0}


def _insider_net_buy(insider: pd.DataFrame | None, axis: _Axis) -> np.ndarray:
    if insider is None:
        return axis.nan()
    _check_columns("insider", insider)
    insider, rows, cols = axis.place("insider", insider)
    code = insider["code"].astype(str).str.strip().str.upper().to_numpy()
    shares = pd.to_numeric(insider["shares"], errors="coerce").abs().to_numpy(dtype=float)
    traded = {}
    for side in ("P", "S"):
        pick = (code == side) & ~np.isnan(shares)
        traded[side] = _calendar_sum(axis.accumulate(rows[pick], cols[pick], shares[pick]), axis.sessions, INSIDER_DAYS)
    return _ratio(traded["P"] - traded["S"], traded["P"] + traded["S"])


@dataclass(frozen=True)
class _Known:
    """One series as known at each session: the value of each observation period as known then, and the latest
    published period's value (NaN where none is published yet, or the latest is stale)."""

    matrix: np.ndarray  # sessions x observation periods
    periods: pd.DatetimeIndex
    latest: pd.DatetimeIndex  # the latest period known at each session (NaT: none)
    value: np.ndarray

    def months_back(self, months: int) -> np.ndarray:
        """The value of the period `months` before the latest known one, as known at the same session."""
        targets = (self.latest.to_period("M") - months).to_timestamp()
        at = self.periods.get_indexer(targets)
        found = (at >= 0) & ~np.isnan(self.value)
        out = np.full(len(self.value), np.nan)
        out[found] = self.matrix[np.flatnonzero(found), at[found]]
        return out


def _known(rows: pd.DataFrame, series: str, sessions: pd.DatetimeIndex) -> _Known:
    observed = pd.to_datetime(rows["observed_on"]).dt.normalize()
    rows = rows.assign(observed_on=observed, value=pd.to_numeric(rows["value"], errors="coerce"))
    rows = rows[rows["value"].notna() & (observed >= sessions[0] - pd.Timedelta(days=_MACRO_HISTORY_DAYS))]
    rows = rows.sort_values(["date", "public_at"] if "public_at" in rows.columns else ["date"], kind="stable")
    positions = sessions.searchsorted(rows["date"].to_numpy(), side="left")  # rows dated earlier: known at the start
    rows = rows.assign(position=positions)[positions < len(sessions)]
    rows = rows.drop_duplicates(["position", "observed_on"], keep="last")  # the session's latest revision
    periods = pd.DatetimeIndex(np.sort(rows["observed_on"].unique()))
    matrix = np.full((len(sessions), len(periods) + 1), np.nan)  # a last all-NaN column: where nothing is known
    matrix[rows["position"].to_numpy(), periods.get_indexer(rows["observed_on"])] = rows["value"].to_numpy()
    matrix = pd.DataFrame(matrix).ffill().to_numpy()  # a value (or its revision) stays known from its session on
    known = ~np.isnan(matrix)
    column = np.where(known.any(axis=1), len(periods) - np.argmax(known[:, ::-1], axis=1), len(periods))
    latest = pd.DatetimeIndex(np.append(periods.to_numpy(), np.datetime64("NaT"))[column])
    age = (sessions - latest).days.to_numpy(dtype=float)
    fresh = age <= MACRO_MAX_AGE_DAYS[SERIES[series].frequency]  # False where NaT
    value = np.where(fresh, matrix[np.arange(len(sessions)), column], np.nan)
    return _Known(matrix[:, :-1], periods, latest, value)


def _shift(values: np.ndarray, sessions: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    out[sessions:] = values[:-sessions]
    return out


def _macro_features(macro: pd.DataFrame | None, sessions: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    names = [c for c in ALT_COLUMNS if c.startswith("macro_")]
    if macro is None:
        return {**{name: np.full(len(sessions), np.nan) for name in names}, "macro_covered": np.zeros(len(sessions))}
    _check_columns("macro", macro)
    macro = macro.assign(date=_dates("macro", macro), series=macro["series"].astype(str).str.strip().str.upper())
    known = {series: _known(macro[macro["series"] == series], series, sessions) for series in MACRO_SERIES}
    vix, dgs10 = known["VIXCLS"].value, known["DGS10"].value
    cpi, unrate = known["CPIAUCSL"], known["UNRATE"]
    return {
        "macro_vix": vix,
        "macro_vix_change_5": vix - _shift(vix, 5),
        "macro_dgs10": dgs10,
        "macro_dgs10_change_20": dgs10 - _shift(dgs10, 20),
        "macro_ted": known["TEDRATE"].value,
        "macro_cpi_yoy": cpi.value / cpi.months_back(12) - 1,
        "macro_unrate_change": unrate.value - unrate.months_back(3),
        "macro_covered": np.mean([~np.isnan(k.value) for k in known.values()], axis=0),
    }


def _check_grid(grid: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("date", "ticker") if c not in grid.columns]
    if missing:
        raise ValueError(f"the grid lacks the column(s) {missing}")
    grid = pd.DataFrame({"date": pd.to_datetime(grid["date"]).dt.normalize(), "ticker": grid["ticker"].astype(str)})
    if grid["date"].isna().any():
        raise ValueError(f"the grid has {int(grid['date'].isna().sum())} row(s) without a date")
    duplicated = grid.duplicated()
    if duplicated.any():
        raise ValueError(
            f"the grid repeats {int(duplicated.sum())} (date, ticker) row(s), e.g. {grid[duplicated].iloc[0].tolist()}"
        )
    days = pd.DatetimeIndex(grid["date"].unique())
    off = days.difference(calendar.sessions(days.min(), days.max())) if len(days) else days
    if len(off):
        raise ValueError(f"the grid has dates that are not sessions: {[f'{d:%Y-%m-%d}' for d in off[:5]]}")
    return grid.reset_index(drop=True)


def _values(grid: pd.DataFrame, items: AltItems) -> dict[str, np.ndarray]:
    axis = _Axis(
        calendar.sessions(calendar.lookback_start(grid["date"].min(), ALT_LOOKBACK_SESSIONS), grid["date"].max()),
        pd.Index(sorted(grid["ticker"].unique())),
    )
    per_ticker = {
        **_text_features("news", items.news, axis),
        **_text_features("social", items.social, axis),
        **_filing_features(items.filings, items.insider, axis),
    }
    market = _macro_features(items.macro, axis.sessions)
    rows, cols = axis.sessions.get_indexer(grid["date"]), axis.tickers.get_indexer(grid["ticker"])
    return {name: per_ticker[name][rows, cols] if name in per_ticker else market[name][rows] for name in ALT_COLUMNS}


def compute_alt_features(grid: pd.DataFrame, items: AltItems) -> pd.DataFrame:
    """The alternative features of each (date, ticker) row of `grid`, in its order: DataFrame[date, ticker,
    *ALT_COLUMNS, alt_feature_set_version]. `items` should hold the ALT_LOOKBACK_SESSIONS sessions before the grid's
    first date; items of tickers outside the grid or dated after its last date are ignored."""
    grid = _check_grid(grid)
    values = _values(grid, items) if len(grid) else {name: np.empty(0) for name in ALT_COLUMNS}
    return grid.assign(**values, alt_feature_set_version=ALT_FEATURE_SET_VERSION)
