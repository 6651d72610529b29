"""Row-level validation of the raw alternative tables (news, social, filings, insider, macro): every fetched row ends
up either valid or quarantined with its rule, its reason and its original values; nothing is dropped silently.

Rules, in order (a row is quarantined by the first it breaks):
- type: a value that cannot be read as its column's type (a word where a number goes, an unreadable timestamp);
- required: a field the row means nothing without (its keys, `public_at`, `date`, the provider);
- range: a number outside its domain (a vendor sentiment outside [-1, 1], a negative share count or price);
- future: public before it was fetched, or no item could be (`public_at` after `ingested_at`);
- session: `date` is not the session `public_at` first counts for (the point-in-time rule of
  `stockpred_core.data.alternative`), or a macro value public before its observation period;
- window: dated outside the run's window or before the calendar's first session;
- duplicate: a second row with the same `alt.KEYS` (the first copy is kept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stockpred_core.data import alternative as alt
from stockpred_core.data import calendar

QUARANTINE_EXTRA = ["rule", "reason", "raw", "quarantined_at"]
TIMESTAMPS = {
    "news": ["date", "public_at", "ingested_at"],
    "social": ["date", "public_at", "ingested_at"],
    "filings": ["date", "filed_on", "public_at", "ingested_at"],
    "insider": ["date", "public_at", "transaction_date", "ingested_at"],
    "macro": ["date", "observed_on", "public_at", "ingested_at"],
}
NUMBERS = {
    "news": ["vendor_sentiment"],
    "social": ["author_followers", "reposts", "likes"],
    "filings": [],
    "insider": ["line", "shares", "price"],
    "macro": ["value"],
}
BOOLEANS = {"insider": ["acquired"]}
TEXT = {
    "news": ["ticker", "item_id", "headline", "body", "source", "url"],
    "social": ["ticker", "item_id", "text", "author_id", "lang"],
    "filings": ["ticker", "cik", "accession", "form", "items"],
    "insider": ["ticker", "cik", "accession", "insider", "code"],
    "macro": ["series"],
}
_REQUIRED_COMMON = ["date", "public_at", "provider", "ingested_at"]
REQUIRED = {
    "news": ["ticker", "item_id"],
    "social": ["ticker", "item_id"],
    "filings": ["ticker", "cik", "accession", "form"],
    "insider": ["ticker", "accession", "line", "code", "shares"],
    "macro": ["series", "observed_on", "value"],
}
# column -> (low, high) inclusive bounds; NaN passes (required fields are checked above)
RANGES = {
    "news": {"vendor_sentiment": (-1.0, 1.0)},
    "social": {"author_followers": (0, np.inf), "reposts": (0, np.inf), "likes": (0, np.inf)},
    "filings": {},
    "insider": {"line": (1, np.inf), "shares": (0, np.inf), "price": (0, np.inf)},
    "macro": {},
}


class AltShapeError(ValueError):
    """The input is not a table of that kind at all (columns missing): nothing can be validated."""


@dataclass
class AltValidation:
    """Valid rows (the kind's columns, typed) and quarantined ones (the same columns plus rule, reason, the row's
    original values as JSON in `raw`, and when)."""

    kind: str
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    duplicates: int

    def by_rule(self) -> dict[str, int]:
        return self.quarantined["rule"].value_counts().to_dict() if len(self.quarantined) else {}


def empty_quarantine(kind: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in [*alt.COLUMNS[kind], *QUARANTINE_EXTRA]})


def _coerce(kind: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The frame with typed columns, and per row the first type failure's reason ("" where none)."""
    typed = frame.copy()
    reasons = pd.Series("", index=frame.index, dtype=object)

    def fail(column: str, bad: pd.Series, what: str) -> None:
        first = bad & (reasons == "")
        if not first.any():
            return
        shown = frame.loc[first, column].astype(str).str.slice(0, 40)
        reasons[first] = f"{column}: '" + shown + f"' is not {what}"

    for column in TIMESTAMPS[kind]:
        given = frame[column].notna()
        typed[column] = alt.to_utc_naive(frame[column]) if given.any() else pd.Series(pd.NaT, index=frame.index)
        if column == "date":
            typed[column] = typed[column].dt.normalize()
        fail(column, given & typed[column].isna(), "a timestamp")
    for column in NUMBERS[kind]:
        given = frame[column].notna()
        typed[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        fail(column, given & typed[column].isna(), "a number")
    for column in BOOLEANS.get(kind, []):
        values = frame[column].map(_boolean)
        fail(column, frame[column].notna() & values.isna(), "true or false")
        typed[column] = values.astype("boolean")
    for column in [*TEXT[kind], "provider", "request_id"]:
        typed[column] = frame[column].where(frame[column].isna(), frame[column].astype(str))
    return typed, reasons


def _boolean(value: object) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return {"true": True, "1": True, "a": True, "false": False, "0": False, "d": False}.get(text)


def _rule_reasons(
    kind: str, typed: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> list[tuple[str, pd.Series]]:
    """(rule, per-row reason or "") for every rule after `type`, in order."""
    out = []
    missing = pd.Series("", index=typed.index, dtype=object)
    for column in [*REQUIRED[kind], *_REQUIRED_COMMON]:
        values = typed[column]
        empty = values.isna() | (values.astype(str).str.strip() == "") if values.dtype == object else values.isna()
        missing[empty & (missing == "")] = f"{column} is missing"
    out.append(("required", missing))

    bounds = pd.Series("", index=typed.index, dtype=object)
    for column, (low, high) in RANGES[kind].items():
        outside = typed[column].notna() & ~typed[column].between(low, high) & (bounds == "")
        if outside.any():
            shown = typed.loc[outside, column].map(lambda v: f"{v:g}")
            bounds[outside] = f"{column} " + shown + f" is outside [{low:g}, {high:g}]"
    out.append(("range", bounds))

    future = typed["public_at"] > typed["ingested_at"]
    out.append(("future", _where(future, lambda i: f"public_at {typed.at[i, 'public_at']} is after its ingestion")))

    expected = alt.session_for(typed["public_at"]).set_axis(typed.index)
    wrong = typed["date"].notna() & typed["public_at"].notna() & (expected != typed["date"])
    session = _where(
        wrong,
        lambda i: (
            f"dated {_day(typed.at[i, 'date'])} but public at {typed.at[i, 'public_at']} UTC first counts for "
            f"{_day(expected[i])}"
        ),
    )
    if kind == "macro":
        early = typed["public_at"] < typed["observed_on"]
        session[early & (session == "")] = "published before the period it observes"
    out.append(("session", session))

    first = pd.Timestamp(calendar.FIRST_SESSION)
    outside = typed["date"].notna() & ((typed["date"] < max(start, first)) | (typed["date"] > end))
    window = f"outside the window {start:%Y-%m-%d}..{end:%Y-%m-%d}" + (
        f" or before the calendar's first session {first:%Y-%m-%d}" if start < first else ""
    )
    out.append(("window", _where(outside, lambda i: f"dated {_day(typed.at[i, 'date'])}: {window}")))
    return out


def _day(value: object) -> str:
    return f"{value:%Y-%m-%d}" if pd.notna(value) else "NaT"


def _where(mask: pd.Series, reason) -> pd.Series:
    out = pd.Series("", index=mask.index, dtype=object)
    for i in mask[mask.fillna(False).astype(bool)].index:
        out[i] = reason(i)
    return out


def _raw_json(frame: pd.DataFrame) -> pd.Series:
    """Each row's original values as JSON (what the source gave, before any type was forced on it)."""
    return pd.Series(
        [json.dumps(row, default=str, ensure_ascii=False) for row in frame.to_dict("records")],
        index=frame.index,
        dtype=object,
    )


def validate_alt(kind: str, frame: pd.DataFrame, start, end, now: pd.Timestamp | None = None) -> AltValidation:
    """Split a fetched table of `kind` dated for the sessions in [start, end] into valid and quarantined rows."""
    if kind not in alt.COLUMNS:
        raise AltShapeError(f"unknown table kind {kind!r}: one of {', '.join(alt.COLUMNS)}")
    lacking = [c for c in alt.COLUMNS[kind] if c not in frame.columns]
    if lacking:
        raise AltShapeError(f"{kind}: the table lacks column(s) {lacking}")
    start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    frame = frame[alt.COLUMNS[kind]].reset_index(drop=True)
    if frame.empty:
        return AltValidation(kind, _typed_empty(kind), empty_quarantine(kind), 0)
    typed, type_reasons = _coerce(kind, frame)
    rule = pd.Series("", index=frame.index, dtype=object)
    reason = pd.Series("", index=frame.index, dtype=object)
    for name, reasons in [("type", type_reasons), *_rule_reasons(kind, typed, start, end)]:
        hit = (reasons != "") & (rule == "")
        rule[hit], reason[hit] = name, reasons[hit]
    repeated = typed[rule == ""].duplicated(alt.KEYS[kind], keep="first")
    duplicated = repeated[repeated].index
    if len(duplicated):
        keys = typed.loc[duplicated, alt.KEYS[kind]].astype(str).agg(", ".join, axis=1)
        rule[duplicated] = "duplicate"
        reason[duplicated] = "duplicate of (" + keys + f") by {', '.join(alt.KEYS[kind])}: the first copy was kept"
    bad = rule != ""
    quarantined = typed[bad].assign(
        rule=rule[bad],
        reason=reason[bad],
        raw=_raw_json(frame[bad]),
        quarantined_at=now if now is not None else pd.Timestamp.now(tz="UTC").tz_localize(None),
    )
    valid = typed[~bad].sort_values(["date", *alt.KEYS[kind]], kind="stable").reset_index(drop=True)
    return AltValidation(kind, valid, quarantined.reset_index(drop=True), len(duplicated))


def _typed_empty(kind: str) -> pd.DataFrame:
    frame = alt.empty(kind)
    for column in TIMESTAMPS[kind]:
        frame[column] = pd.Series(dtype="datetime64[ns]")
    for column in NUMBERS[kind]:
        frame[column] = pd.Series(dtype="float64")
    return frame


def keep_quarantine(earlier: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The quarantine table after a run: earlier rows plus new ones, one per (provider, rule, raw) (a row
    quarantined again by a re-run of its window is the same row; the first quarantine is kept)."""
    parts = [f for f in (earlier, new) if len(f)]
    if not parts:
        return new if len(new.columns) else earlier
    frame = pd.concat(parts, ignore_index=True)
    # `raw` holds ingested_at/request_id, which differ per fetch: compare the source's own fields
    identity = frame["raw"].map(_source_identity)
    return frame[~pd.DataFrame({"p": frame["provider"], "r": frame["rule"], "i": identity}).duplicated()].reset_index(
        drop=True
    )


def _source_identity(raw: str) -> str:
    try:
        values = json.loads(raw)
    except (TypeError, ValueError):
        return str(raw)
    return json.dumps({k: v for k, v in values.items() if k not in ("ingested_at", "request_id")}, sort_keys=True)
