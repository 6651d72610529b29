"""Macroeconomic series from FRED: the series/observations API (`FredProvider`) or FRED's CSV downloads in a folder
(`FredFilesProvider`). Each observation is stamped with the moment it became public
(`stockpred_core.data.macro_calendar.published_at`): a value counts from its publication, never from its period.

FRED writes "." for a period without a value (a market holiday of a daily series): such an observation is skipped
and counted in the notes, neither a row nor an error. A value that is not a number, or a date that is not a date, is
a reject with its text and reason.
"""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr

from stockpred_core.data import alternative as alt
from stockpred_core.data import macro_calendar
from stockpred_core.data.schemas import REJECT_COLUMNS, empty_frame
from stockpred_core.io.http_client import BadResponseError, HttpStatusError, ProviderError, UnknownTickerError
from stockpred_core.redaction import secrets_in
from stockpred_resources.providers.alternative import AltFetchReport, MacroProvider, SubjectItems
from stockpred_resources.providers.http_settings import HttpSettings

OBSERVATIONS = "/fred/series/observations"
MISSING = {".", ""}  # FRED's "no value for this period"
# How far before the window's first session an observation may lie and still be published inside it: the longest lag
# of each frequency (OECD monthly series: the 1st of M+2; GDP: the 1st of the quarter's fifth month), with room.
LOOKBACK = {"daily": pd.DateOffset(days=10), "monthly": pd.DateOffset(months=3), "quarterly": pd.DateOffset(months=6)}


class FredAuthError(ProviderError):
    """FRED refused the API key (missing, malformed or not registered): every series will fail the same way."""

    kind, retryable = "auth", False


class FredRequestError(ProviderError):
    """FRED answered 400 to a request that another attempt would repeat."""

    kind, retryable = "bad_request", False


def observation_window(series: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The observation dates to ask for so that every value published for the sessions in [start, end] is fetched:
    a value observed after `end` is published after it."""
    spec = _spec(series)
    return (pd.Timestamp(start) - LOOKBACK[spec.frequency]).normalize(), pd.Timestamp(end).normalize()


def _spec(series: str) -> macro_calendar.SeriesSpec:
    if series not in macro_calendar.SERIES:
        known = ", ".join(macro_calendar.SERIES)
        raise UnknownTickerError(f"{series}: no publication lag is known for this series (known: {known})", requests=0)
    return macro_calendar.SERIES[series]


@dataclass
class Observations:
    """One series' observations: rows (series, observed_on, value, public_at), rejects [date (the session the value
    would have counted for), raw, reason, undated], and the publication moments of the "." periods (skipped, counted
    per window)."""

    rows: pd.DataFrame
    rejects: pd.DataFrame
    missing: pd.Series


def _dates(text: pd.Series) -> pd.Series:
    """YYYY-MM-DD, or M/D/YYYY as some re-saved FRED downloads have it; NaT otherwise."""
    iso = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    us = pd.to_datetime(text.where(iso.isna()), format="%m/%d/%Y", errors="coerce")
    return iso.fillna(us)


def parse_observations(series: str, dates: pd.Series, values: pd.Series, raw: pd.Series) -> Observations:
    """(date text, value text) pairs of `series` as macro rows with `public_at`; `raw` is each pair's source text."""
    dates, values = dates.astype(str).str.strip(), values.astype(str).str.strip()
    observed = _dates(dates)
    missing = values.isin(MISSING)
    number = pd.to_numeric(values.where(~missing), errors="coerce")
    bad_date, bad_value = observed.isna(), ~missing & ~np.isfinite(number)
    reason = pd.Series("", index=dates.index, dtype=object)
    reason[bad_date] = "date " + dates[bad_date].map(repr) + " is not a date; "
    reason[bad_value] = reason[bad_value] + "value " + values[bad_value].map(repr) + " is not a number; "
    bad = bad_date | bad_value
    public_at = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    public_at[~bad_date] = macro_calendar.published_at(series, observed[~bad_date]).to_numpy()
    good = ~bad & ~missing
    rows = pd.DataFrame(
        {
            "series": series,
            "observed_on": observed[good],
            "value": number[good].astype("float64"),
            "public_at": public_at[good],
        }
    )
    rejects = pd.DataFrame(
        {
            "date": alt.session_for(public_at[bad]).to_numpy(),
            "raw": raw[bad],
            "reason": reason[bad].str[:-2],
            "undated": bad_date[bad],
        }
    )
    return Observations(rows.reset_index(drop=True), rejects.reset_index(drop=True), public_at[missing & ~bad_date])


def _reject_frame(
    rejects: pd.DataFrame, provider: str, series: str, source: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Rejects in REJECT_COLUMNS, each reported in the partition of the session its value would have counted for
    (one without a date in every fetch)."""
    keep = rejects[rejects["date"].between(start, end) | rejects["undated"].astype(bool)]
    if keep.empty:
        return empty_frame(REJECT_COLUMNS)
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    return keep.assign(source=source, ticker=series, provider=provider, rejected_at=now)[REJECT_COLUMNS]


def _missing_note(series: str, missing: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> str | None:
    count = int(alt.session_for(missing).between(start, end).sum())
    if not count:
        return None
    return f"{series}: {count} observation(s) without a value skipped for {start:%Y-%m-%d}..{end:%Y-%m-%d}"


class FredProvider(MacroProvider, HttpSettings):
    """FRED's series/observations API, one series per request; the API key travels as a query parameter and is
    masked wherever a message could carry it."""

    api_key: str = Field(description="FRED API key (pass dg.EnvVar('FRED_API_KEY'))")
    base_url: str = Field(default="https://api.stlouisfed.org", description="Scheme and host of the API")
    requests_per_minute: float = Field(default=120.0, gt=0, description="Client-side rate limit (FRED allows 120)")

    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "fred"

    def secrets(self) -> list[str]:
        return [self.api_key, *secrets_in(self.base_url)]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_http()

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, subjects: list[str] | None = None) -> AltFetchReport:
        self._notes = []
        return super().fetch(start, end, subjects)

    def notes(self) -> list[str]:
        return list(self._notes)

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        first, last = observation_window(subject, start, end)
        if not self.api_key.strip():
            raise FredAuthError(f"{subject}: no FRED API key is configured (set FRED_API_KEY)", requests=0)
        client = self.http_client(self.base_url, secrets=self.secrets())
        params = {
            "series_id": subject,
            "api_key": self.api_key,
            "file_type": "json",
            "observation_start": f"{first:%Y-%m-%d}",
            "observation_end": f"{last:%Y-%m-%d}",
        }
        observations, spent, request_id = [], 0, ""
        while True:  # FRED pages at `limit` observations (100,000 by default)
            try:
                payload, request_id, attempts = client.get_json(OBSERVATIONS, {**params, "offset": len(observations)})
            except HttpStatusError as exc:
                raise _fred_error(subject, exc, spent + exc.requests) from None
            except ProviderError as exc:
                exc.requests += spent
                raise
            spent += attempts
            page = self.parse_reply(subject, request_id, spent, lambda p=payload: _page(p), "series/observations")
            observations += page[0]
            if not page[0] or len(observations) >= page[1]:
                break
        parsed = self.parse_reply(
            subject, request_id, spent, lambda: _api_observations(subject, observations), "observations"
        )
        return self._items(subject, parsed, request_id, spent, start, end)

    def _items(
        self, series: str, parsed: Observations, request_id: str, spent: int, start: pd.Timestamp, end: pd.Timestamp
    ) -> SubjectItems:
        note = _missing_note(series, parsed.missing, start, end)
        if note:
            self._notes.append(note)
        rejects = _reject_frame(parsed.rejects, self.name, series, OBSERVATIONS, start, end)
        rows = {"macro": self.stamp(parsed.rows, "macro", request_id)}
        return SubjectItems(series, rows=rows, rejects=rejects, requests=spent)


def _page(payload: Any) -> tuple[list[dict], int]:
    """(observations, the series' total count) of one reply."""
    if not isinstance(payload, dict) or not isinstance(payload.get("observations"), list):
        keys = sorted(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        raise BadResponseError(f"no 'observations' list in the body ({keys})")
    return payload["observations"], int(payload.get("count", len(payload["observations"])))


def _api_observations(series: str, observations: list[dict]) -> Observations:
    frame = pd.DataFrame(observations, columns=["date", "value"]).fillna("")
    raw = pd.Series([json.dumps(o, default=str) for o in observations], dtype=object)
    return parse_observations(series, frame["date"], frame["value"], raw)


def _fred_error(series: str, error: HttpStatusError, requests: int) -> ProviderError:
    """FRED's 400 {"error_code", "error_message"} as the error it stands for (the text is already redacted)."""
    try:
        message = str(json.loads(error.text)["error_message"])
    except (ValueError, KeyError, TypeError):
        message = error.text
    text = f"{series}: FRED HTTP {error.status}: {message}"
    lowered = message.lower()
    if "series does not exist" in lowered:
        failure: ProviderError = UnknownTickerError(text)
    elif "api_key" in lowered or "api key" in lowered:
        failure = FredAuthError(text)
    elif error.status == 400:
        failure = FredRequestError(text)
    else:
        failure = error
    failure.requests, failure.request_id = requests, error.request_id
    return failure


class FredFilesProvider(MacroProvider):
    """FRED CSV downloads in a folder, one <SERIES>.csv per series: a date column (YYYY-MM-DD or M/D/YYYY) and a value
    column under any header (re-saved files rename it, e.g. DGS10.csv's "10yrTreasYeild"); the series id is the file
    name. A line that is not a date and a number is a reject; the other lines load.

    Some re-saved files write 0 where FRED writes ".": ../shared/data's DGS10.csv holds 329 zeros, every one on a day
    the bond market was shut (Columbus and Veterans Day, holidays), while the 10-year yield's lowest value in it is
    0.52. A series listed in `zero_means_missing` has its zeros counted as missing, not loaded as values."""

    path: str = Field(default="", description="A folder of FRED CSV downloads named <SERIES>.csv")
    zero_means_missing: list[str] = Field(
        default_factory=lambda: ["DGS10"], description="Series whose file writes 0 for a day without a value"
    )

    _read: dict[str, tuple[Observations, str]] = PrivateAttr(default_factory=dict)  # series -> (parsed, request id)
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "fred_files"

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, subjects: list[str] | None = None) -> AltFetchReport:
        self._notes = []
        return super().fetch(start, end, subjects)

    def notes(self) -> list[str]:
        return list(self._notes)

    def file_of(self, series: str) -> Path:
        root = Path(self.path).expanduser()
        if not self.path or not root.is_dir():
            raise BadResponseError(f"{self.path!r} is not a folder of FRED CSV files", requests=0)
        found = [p for p in root.iterdir() if p.name.lower() == f"{series.lower()}.csv"]
        if not found:
            raise UnknownTickerError(f"{series}: no {series}.csv in {root}", requests=0)
        return found[0]

    def observations(self, series: str) -> tuple[Observations, str]:
        """The series' file parsed (once per resource) and the request id its rows carry."""
        if series not in self._read:
            _spec(series)
            path = self.file_of(series)
            with path.open(newline="", encoding="utf-8-sig") as handle:
                lines = list(csv.reader(handle))
            if not lines:
                raise BadResponseError(f"{path.name} is empty", requests=0)
            body = [r for r in lines[1:] if r]  # the header varies: DATE / observation_date, the series or another
            pairs = pd.DataFrame([r[:2] for r in body if len(r) == 2], columns=["date", "value"], dtype=object)
            raw = pd.Series([",".join(r) for r in body if len(r) == 2], dtype=object)
            if series in self.zero_means_missing:
                pairs.loc[pd.to_numeric(pairs["value"], errors="coerce") == 0, "value"] = "."
            parsed = parse_observations(series, pairs["date"], pairs["value"], raw)
            misshapen = [",".join(r) for r in body if len(r) != 2]
            if misshapen:
                reason = "expected 2 fields (date, value)"
                extra = pd.DataFrame({"date": pd.NaT, "raw": misshapen, "reason": reason, "undated": True})
                parsed.rejects = pd.concat([parsed.rejects, extra], ignore_index=True)
            self._read[series] = (parsed, uuid.uuid4().hex)
        return self._read[series]

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        parsed, request_id = self.observations(subject)
        note = _missing_note(subject, parsed.missing, start, end)
        if note:
            self._notes.append(note)
        source = self.file_of(subject).name
        rejects = _reject_frame(parsed.rejects, self.name, subject, source, start, end)
        window = parsed.rows[alt.session_for(parsed.rows["public_at"]).between(start, end).to_numpy()]
        return SubjectItems(
            subject, rows={"macro": self.stamp(window, "macro", request_id)}, rejects=rejects, requests=0
        )
