"""The interface of the alternative-data providers (news, social, filings, macro): one abstract resource per kind,
a real API client and a files provider (the recordings a user already has) for each.

A provider fetches the items that count for the sessions in [start, end] (their `date`, see
`stockpred_core.data.alternative`) per SUBJECT (a ticker; a series for macro), one subject at a time, so one bad
subject never fails a partition: it is reported in `AltFetchReport.failures` (the dead letters) with its reason,
stripped of the provider's secrets. Source rows the raw layer cannot hold (no timestamp, text in a number) are
`rejects` with their text and reason; the assets' validation then quarantines rows that parse but break a rule.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pandas as pd
from pydantic import Field

from stockpred_core.data import alternative as alt
from stockpred_core.data.schemas import FAILURE_COLUMNS, REJECT_COLUMNS, empty_frame
from stockpred_core.io.http_client import BadResponseError, ProviderError
from stockpred_core.redaction import redact
from stockpred_resources.providers.base import configured_symbols


@dataclass
class SubjectItems:
    """What the requests for one subject returned: rows per table kind (in `alt.COLUMNS[kind]`), source rows that
    could not be parsed (REJECT_COLUMNS), and the requests spent."""

    subject: str
    rows: dict[str, pd.DataFrame]
    rejects: pd.DataFrame = field(default_factory=lambda: empty_frame(REJECT_COLUMNS))
    requests: int = 1


@dataclass
class AltFetchReport:
    """The result of fetching many subjects: rows per table kind, dead letters, rejects, what it cost."""

    rows: dict[str, pd.DataFrame]  # kind -> frame in alt.COLUMNS[kind]; every kind of the provider is present
    failures: pd.DataFrame  # FAILURE_COLUMNS; `ticker` holds the subject (a ticker, a series id)
    rejects: pd.DataFrame  # REJECT_COLUMNS
    requests: int = 0
    latency_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # warnings about the source as a whole


def recording_files(paths: list[str], suffixes: tuple[str, ...], what: str) -> list[Path]:
    """The files of `paths` (files, or folders searched recursively for names ending in `suffixes`), in order; a
    clear error when none is configured or one does not exist."""
    if not paths:
        raise BadResponseError(f"the {what} files provider has no paths: set its `paths` to files or folders")
    found: list[Path] = []
    for path in (Path(p).expanduser() for p in paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes))
        elif path.is_file():
            found.append(path)
        else:
            raise BadResponseError(f"{path} does not exist")
    return found


class AltDataProvider(dg.ConfigurableResource):
    """A source of one kind of alternative data. Subclasses set KIND and TABLES and implement `fetch_subject`."""

    KIND: ClassVar[str] = ""  # news | social | filings | macro
    TABLES: ClassVar[tuple[str, ...]] = ()  # the alt.COLUMNS kinds it produces ("filings" also gives "insider")

    tickers: list[str] = Field(default_factory=list, description="The tickers to fetch items for")
    universe_file: str | None = Field(default=None, description="A text file with one symbol per line (# comments)")

    @property
    @abstractmethod
    def name(self) -> str:
        """Recorded in the `provider` column of every row and in the asset's name (raw_news_<name>)."""

    def subjects(self) -> list[str]:
        """What `fetch` iterates over by default: the configured tickers (macro: its series)."""
        return configured_symbols(self.tickers, self.universe_file)

    def secrets(self) -> list[str]:
        """Configured values that must never appear in a message (API keys, tokens, URL passwords)."""
        return []

    def notes(self) -> list[str]:
        return []

    @abstractmethod
    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        """The subject's items counting for the sessions in [start, end]; raises ProviderError."""

    def stamp(self, frame: pd.DataFrame, kind: str, request_id: str | None) -> pd.DataFrame:
        """Add `date` (the session each row first counts for), provider, fetch time and request id; keep the rows
        whose session lies in the window the caller filters on. Columns end in `alt.COLUMNS[kind]` order."""
        frame = frame.copy()
        frame["date"] = alt.session_for(frame["public_at"]).to_numpy() if len(frame) else pd.Series(dtype="M8[ns]")
        frame["provider"] = self.name
        frame["ingested_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
        frame["request_id"] = request_id
        return frame.reindex(columns=alt.COLUMNS[kind])

    def parse_reply(self, subject: str, request_id: str, requests: int, parse: Callable[[], SubjectItems], what: str):
        """Run `parse`; a reply not shaped as documented becomes a BadResponseError carrying the request count/id."""
        try:
            return parse()
        except ProviderError as exc:
            exc.requests, exc.request_id = requests, request_id
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            message = f"{subject}: {what} not shaped as documented ({type(exc).__name__}: {exc})"
            raise BadResponseError(message, requests=requests, request_id=request_id) from None

    def failure_record(self, subject: str, error: ProviderError) -> dict:
        return {
            "ticker": subject,
            "provider": self.name,
            "kind": error.kind,
            "reason": redact(str(error), self.secrets()),
            "retryable": error.retryable,
            "attempted_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            "requests": error.requests,
            "request_id": error.request_id,
        }

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, subjects: list[str] | None = None) -> AltFetchReport:
        """Fetch each subject (default: `subjects()`); rows outside [start, end] are dropped; a failing subject is
        reported, never raised."""
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        parts: dict[str, list[pd.DataFrame]] = {kind: [] for kind in self.TABLES}
        failures, rejects, latency, requests = [], [], {}, 0
        for subject in subjects if subjects is not None else self.subjects():
            began = time.monotonic()
            try:
                got = self.fetch_subject(subject, start, end)
            except ProviderError as exc:
                failures.append(self.failure_record(subject, exc))
                requests += exc.requests
            else:
                requests += got.requests
                for kind, frame in got.rows.items():
                    if len(frame):
                        parts[kind].append(frame[frame["date"].between(start, end)])
                if len(got.rejects):
                    rejects.append(got.rejects)
            latency[subject] = time.monotonic() - began
        rows = {
            kind: pd.concat(frames, ignore_index=True)[alt.COLUMNS[kind]] if frames else alt.empty(kind)
            for kind, frames in ((k, [f for f in v if len(f)]) for k, v in parts.items())
        }
        return AltFetchReport(
            rows=rows,
            failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS) if failures else empty_frame(FAILURE_COLUMNS),
            rejects=pd.concat(rejects, ignore_index=True)[REJECT_COLUMNS] if rejects else empty_frame(REJECT_COLUMNS),
            requests=requests,
            latency_s=latency,
            notes=self.notes(),
        )


class NewsProvider(AltDataProvider):
    KIND: ClassVar[str] = "news"
    TABLES: ClassVar[tuple[str, ...]] = ("news",)


class SocialProvider(AltDataProvider):
    KIND: ClassVar[str] = "social"
    TABLES: ClassVar[tuple[str, ...]] = ("social",)


class FilingsProvider(AltDataProvider):
    KIND: ClassVar[str] = "filings"
    TABLES: ClassVar[tuple[str, ...]] = ("filings", "insider")


class MacroProvider(AltDataProvider):
    """Subjects are series ids (e.g. VIXCLS); `tickers` is unused."""

    KIND: ClassVar[str] = "macro"
    TABLES: ClassVar[tuple[str, ...]] = ("macro",)

    series: list[str] = Field(
        default_factory=lambda: ["VIXCLS", "DGS10", "TEDRATE", "CPIAUCSL", "UNRATE"],
        description="FRED series ids (each needs a publication rule in stockpred_core.data.macro_calendar)",
    )

    def subjects(self) -> list[str]:
        return list(dict.fromkeys(self.series))
