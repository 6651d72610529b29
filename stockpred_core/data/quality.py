"""Row-level validation: every raw bar ends up either validated or quarantined with its rule and reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.errors as pa_errors

from stockpred_core.data import anomalies as an
from stockpred_core.data import calendar
from stockpred_core.data.schemas import BAR_COLUMNS, EVENT_COLUMNS, BarSchema, empty_frame

QUARANTINE_COLUMNS = [*BAR_COLUMNS, "rule", "reason"]
PRICE_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]


class BarShapeError(ValueError):
    """The input is not a table of bars at all (missing columns, wrong types): nothing can be validated."""


def _reject(reasons: dict[int, tuple[str, str]], index, rule: str, reason) -> None:
    for i in index:
        reasons.setdefault(i, (rule, reason(i) if callable(reason) else reason))


def _reference_closes(frame: pd.DataFrame, reference: pd.DataFrame | None) -> dict[tuple, tuple[float, str]]:
    """(date, ticker) -> the close a duplicated bar should agree with: the other providers' median, else the median
    of the ticker's closes on the sessions before and after. Computed once for the whole frame."""
    keys = frame.loc[frame.duplicated(["date", "ticker"], keep=False), ["date", "ticker"]].drop_duplicates()
    found: dict[tuple, tuple[float, str]] = {}
    if reference is not None and len(reference):
        others = reference.dropna(subset=["close"]).groupby(["date", "ticker"])["close"].median()
        found = {key: (float(close), "the other providers") for key, close in others.items()}
    positive = frame[frame["close"] > 0].sort_values(["ticker", "date", "ingested_at"], kind="stable")
    per_day = positive.groupby(["ticker", "date"])["close"].last()
    by_ticker = per_day.groupby(level="ticker")
    around = pd.concat([by_ticker.shift(1), by_ticker.shift(-1)], axis=1).median(axis=1).dropna()
    for ticker, date in around.index.intersection(pd.MultiIndex.from_frame(keys[["ticker", "date"]])):
        found.setdefault((date, ticker), (float(around[(ticker, date)]), "the neighbouring sessions"))
    return found


def _duplicates(frame: pd.DataFrame, reference: pd.DataFrame | None) -> dict[int, tuple[str, str]]:
    """Of each (date, ticker) held twice, keep the bar nearest the reference close and quarantine the others;
    identical copies (or no reference) keep the latest ingestion."""
    reasons: dict[int, tuple[str, str]] = {}
    held = frame[frame.duplicated(["date", "ticker"], keep=False)]
    if held.empty:
        return reasons
    closes = _reference_closes(frame, reference)
    for (date, ticker), group in held.groupby(["date", "ticker"], sort=False):
        group = group.sort_values("ingested_at", kind="stable")
        found = None if len(group.drop_duplicates(PRICE_COLUMNS)) == 1 else closes.get((date, ticker))
        if found is None:
            keep, why = group.index[-1], "duplicate (date, ticker): the latest ingestion was kept"
        else:
            close, source = found
            distance = (np.log(group["close"].where(group["close"] > 0) / close)).abs().fillna(np.inf)
            keep = distance.idxmin()
            why = (
                f"duplicate (date, ticker) with different values: the bar closing at {group.at[keep, 'close']:g}, "
                f"nearest {source} ({close:g}), was kept"
            )
        _reject(reasons, group.index.drop(keep), "duplicate", why)
    return reasons


def split_valid(raw: pd.DataFrame, reference: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(validated, quarantined) frames whose row counts add up to len(raw); `reference` (date, ticker, close of
    other providers) settles which of two different bars for one (date, ticker) is kept."""
    missing = [c for c in BAR_COLUMNS if c not in raw.columns]
    if missing:
        raise BarShapeError(f"raw bars lack the canonical columns {missing}")
    frame = raw[BAR_COLUMNS].reset_index(drop=True)
    reasons: dict[int, tuple[str, str]] = {}

    reasons.update(_duplicates(frame, reference))
    if len(frame):
        days = pd.to_datetime(frame["date"]).dt.normalize()
        open_days = calendar.sessions(days.min(), days.max())
        off = ~days.isin(open_days)
        _reject(reasons, frame.index[off], "trading_day", lambda i: f"{days[i].date()} is not an NYSE session")

    candidates = frame.drop(index=list(reasons))
    try:
        BarSchema.validate(candidates, lazy=True)
    except pa_errors.SchemaErrors as errors:
        cases = errors.failure_cases
        if cases["index"].isna().any():
            table_level = cases[cases["index"].isna()][["column", "check"]].drop_duplicates().to_dict("records")
            raise BarShapeError(f"raw bars fail table-level schema checks: {table_level}") from errors
        # Column checks (nulls, types, ranges) explain a row better than the row-wide OHLC check: report them first.
        cases = cases.assign(row_wide=cases["schema_context"] == "DataFrameSchema").sort_values(
            "row_wide", kind="stable"
        )
        for case in cases.itertuples():
            if case.row_wide:
                _reject(reasons, [int(case.index)], "ohlc", f"row failed: {case.check}")
            else:
                _reject(
                    reasons,
                    [int(case.index)],
                    f"{case.column}:{case.check}",
                    f"{case.column} failed {case.check} (value {case.failure_case!r})",
                )

    bad = sorted(reasons)
    quarantined = frame.loc[bad].copy()
    quarantined["rule"] = [reasons[i][0] for i in bad]
    quarantined["reason"] = [reasons[i][1] for i in bad]
    validated = BarSchema.validate(frame.drop(index=bad)) if len(frame) > len(bad) else frame.iloc[0:0]
    return validated.reset_index(drop=True), quarantined[QUARANTINE_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class ProviderValidation:
    """One provider's window after every rule: rows split into valid/quarantined, events cleaned and completed."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame  # QUARANTINE_COLUMNS
    events: pd.DataFrame  # EVENT_COLUMNS: reported ones that passed, plus detected splits
    quarantined_events: pd.DataFrame  # EVENT_COLUMNS + rule, reason
    flags: pd.DataFrame  # unexplained jumps: kept, but reported


def _quarantine(frame: pd.DataFrame, index: pd.Index, rule: str, reason: str) -> pd.DataFrame:
    return frame.loc[index, BAR_COLUMNS].assign(rule=rule, reason=reason)


def validate_provider(
    raw: pd.DataFrame,
    events: pd.DataFrame,
    context: pd.DataFrame,
    stale_sessions: int = 5,
    jump_sigmas: float = 8.0,
    reference: pd.DataFrame | None = None,
) -> ProviderValidation:
    """Schema rules, then the anomaly rules on the window (with `context`: valid bars of the sessions just before it,
    so a split on the window's first day is still seen). Unit mix-ups, bad prints and stale prices are quarantined;
    unreported splits become `detected` events; dividends that cannot be right are quarantined; big moves without a
    corporate action are flagged but kept, since a crash is data, not an error."""
    valid, quarantined = split_valid(raw, reference) if len(raw) else (raw, empty_frame(QUARANTINE_COLUMNS))
    window_start = valid["date"].min() if len(valid) else None
    history = pd.concat([context[context["date"] < window_start], valid], ignore_index=True) if len(context) else valid
    in_window = history["date"] >= window_start if len(valid) else pd.Series(False, index=history.index)
    found = []
    for rule, rows, reason in (
        (
            "unit_mismatch",
            an.unit_mismatches(history),
            "closes step by ~100x in the window (unit mix-up): the "
            "ticker's rows are held until the source is corrected",
        ),
        ("spike", an.spikes(history), "close jumps away from both neighbouring sessions and comes back (bad print)"),
        ("stale", an.stale_rows(history, stale_sessions), f"OHLC unchanged for {stale_sessions}+ sessions"),
    ):
        rows = rows[in_window.loc[rows].to_numpy()] if len(rows) else rows
        rows = rows.difference(pd.Index([i for part in found for i in part.index]))
        found.append(_quarantine(history, rows, rule, reason))
    bad_rows = pd.Index([i for part in found for i in part.index])
    clean = history.drop(index=bad_rows)
    events = events if len(events) else empty_frame(EVENT_COLUMNS)
    bad_divs = an.implausible_dividends(clean, events)
    quarantined_events = events.loc[bad_divs].assign(
        rule="dividend_implausible",
        reason="pays over 20% of the previous close without the price falling by half of it",
    )
    kept_events = events.drop(index=bad_divs)
    detected = an.detect_splits(clean, kept_events)
    all_events = pd.concat(
        [e for e in (kept_events, detected) if len(e)] or [empty_frame(EVENT_COLUMNS)], ignore_index=True
    )
    flags = an.unexplained_jumps(clean, all_events, n_sigma=jump_sigmas)
    start = window_start if window_start is not None else pd.Timestamp.max
    return ProviderValidation(
        valid=clean[clean["date"] >= start][valid.columns].reset_index(drop=True),
        quarantined=pd.concat([quarantined, *[f for f in found if len(f)]], ignore_index=True)[QUARANTINE_COLUMNS],
        events=all_events[all_events["date"] >= start].reset_index(drop=True)[EVENT_COLUMNS],
        quarantined_events=quarantined_events.reset_index(drop=True),
        flags=flags[flags["date"] >= start].drop(columns="index").reset_index(drop=True),
    )
