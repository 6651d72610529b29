"""News items per ticker: NewsAPI's /v2/everything search (`NewsApiProvider`) and the recordings a user already has
(`NewsFilesProvider`: FNSPID's daily news-sentiment CSVs, Benzinga headline CSVs), mapped to `alt.NEWS_COLUMNS`.

Every item carries the UTC moment it became public; the session it counts for follows from it (see
`stockpred_core.data.alternative.session_for`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr

from stockpred_core.data import alternative as alt
from stockpred_core.data.schemas import REJECT_COLUMNS, empty_frame
from stockpred_core.io.http_client import (
    BadResponseError,
    HttpStatusError,
    ProviderError,
    QuotaExceededError,
)
from stockpred_core.redaction import secrets_in
from stockpred_resources.providers.alternative import NewsProvider, SubjectItems, recording_files
from stockpred_resources.providers.http_settings import HttpSettings

EVERYTHING = "/v2/everything"
# Legal-form words dropped from a company name before it is searched as a phrase ("Apple Inc." -> "Apple").
LEGAL_FORM = re.compile(
    r"(\s*\([^)]*\))|([,\s]+(Inc|Incorporated|Corp|Corporation|Co|Company|Ltd|Limited|plc|N\.V|S\.A|AG|L\.P)\.?)+$",
    re.IGNORECASE,
)
AUTH_CODES = {"apiKeyInvalid", "apiKeyMissing", "apiKeyDisabled", "apiKeyExhausted"}


class CredentialsRejectedError(ProviderError):
    """The API refused the configured key or token (401/403): no retry helps until the configuration changes."""

    kind, retryable = "auth", False


def public_window(start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The UTC moments (tz-naive) whose items count for the sessions in [start, end]: from the close of the session
    before `start` to the close of the last session on or before `end`; None when the range holds no session."""
    closes, sessions = alt._closes()
    first = sessions.searchsorted(pd.Timestamp(start).normalize())
    last = sessions.searchsorted(pd.Timestamp(end).normalize(), side="right") - 1
    if last < first or first >= len(sessions):
        return None
    # Before the calendar's first session nothing is known of the previous close: a few days cover any weekend.
    since = pd.Timestamp(closes[first - 1]) if first > 0 else sessions[0] - pd.Timedelta(days=4)
    return since, pd.Timestamp(closes[last])


def reject_rows(provider: str, source: Any, ticker: Any, date: Any, raw: Any, reason: Any) -> pd.DataFrame:
    """REJECT_COLUMNS rows from scalars (repeated) and sequences (one value per row, all of one length)."""
    values = {"source": source, "ticker": ticker, "date": date, "raw": raw, "reason": reason}
    sequences = [v for v in values.values() if isinstance(v, list | tuple | np.ndarray | pd.Series | pd.Index)]
    n = len(sequences[0]) if sequences else 1
    if n == 0:
        return empty_frame(REJECT_COLUMNS)
    frame = pd.DataFrame({k: list(v) if any(v is s for s in sequences) else [v] * n for k, v in values.items()})
    frame["date"] = pd.to_datetime(frame["date"], errors="coerce")
    return frame.assign(provider=provider, rejected_at=pd.Timestamp.now(tz="UTC").tz_localize(None))[REJECT_COLUMNS]


def _error_body(text: str) -> dict:
    """NewsAPI's {"status":"error","code","message"} from an error reply's text ({} when it is not that)."""
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class NewsApiProvider(NewsProvider, HttpSettings):
    """NewsAPI's /v2/everything: articles naming the company or its ticker, newest first, page by page.

    The query is `"<company>" OR <TICKER>` (the company from `companies_file`, legal form dropped); a ticker of one or
    two letters is left out when the company is known (NewsAPI matches words: "A" or "T" would match everything). The
    developer plan stops at 100 results (HTTP 426 maximumResultsReached): what arrived is kept and a note says so."""

    api_key: str = Field(description="NewsAPI key, sent in the X-Api-Key header (pass dg.EnvVar('NEWSAPI_API_KEY'))")
    base_url: str = Field(default="https://newsapi.org", description="Scheme and host of the API")
    companies_file: str | None = Field(
        default=None, description="CSV with Name,Symbol columns (the S&P 500 CIK list): names searched for"
    )
    search_in: str = Field(default="title,description", description="NewsAPI's searchIn: title,description,content")
    language: str = Field(default="en", description="NewsAPI's language filter")
    page_size: int = Field(default=100, ge=1, le=100, description="Articles per page (NewsAPI's maximum is 100)")
    max_pages: int = Field(default=10, ge=1, description="Pages fetched per ticker at most")
    requests_per_minute: float = Field(default=30.0, gt=0, description="Client-side rate limit")
    requests_per_day: int | None = Field(default=100, ge=0, description="Daily request cap (developer plan: 100)")

    _companies: dict[str, str] | None = PrivateAttr(default=None)
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "newsapi"

    def secrets(self) -> list[str]:
        return [self.api_key, *secrets_in(self.base_url)]

    def notes(self) -> list[str]:
        return list(self._notes)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_http()

    def companies(self) -> dict[str, str]:
        """Ticker -> company name searched for (empty without `companies_file`)."""
        if self._companies is None:
            self._companies = {}
            if self.companies_file:
                table = pd.read_csv(self.companies_file, dtype=str, keep_default_na=False)
                if not {"Name", "Symbol"} <= set(table.columns):
                    raise ValueError(f"{self.companies_file}: expected columns Name,Symbol (got {list(table.columns)})")
                names = table["Name"].str.replace(LEGAL_FORM, "", regex=True).str.strip()
                self._companies = dict(zip(table["Symbol"].str.strip().str.upper(), names, strict=True))
        return self._companies

    def query(self, ticker: str) -> str:
        company = self.companies().get(ticker, "").replace('"', "")
        if not company:
            return ticker
        return f'"{company}"' if len(ticker) <= 2 else f'"{company}" OR {ticker}'

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        window = public_window(start, end)
        if window is None:
            return SubjectItems(subject, {"news": alt.empty("news")}, requests=0)
        client = self.http_client(self.base_url, headers={"X-Api-Key": self.api_key}, secrets=self.secrets())
        params = {
            "q": self.query(subject),
            "searchIn": self.search_in,
            "from": window[0].strftime("%Y-%m-%dT%H:%M:%S"),
            "to": window[1].strftime("%Y-%m-%dT%H:%M:%S"),
            "language": self.language,
            "sortBy": "publishedAt",
            "pageSize": self.page_size,
        }
        frames, rejects, requests, request_id, seen = [], [], 0, None, 0
        for page in range(1, self.max_pages + 1):
            try:
                payload, request_id, attempts = client.get_json(EVERYTHING, {**params, "page": page})
            except HttpStatusError as exc:
                requests += exc.requests
                error = _error_body(exc.text)
                if error.get("code") == "maximumResultsReached" and frames:
                    self._notes.append(
                        f"{subject}: NewsAPI stopped at {seen} results (maximumResultsReached: "
                        f"{error.get('message', '')}); the rest of the window was not fetched"
                    )
                    break
                raise self._status_error(subject, exc, error, requests) from None
            except ProviderError as exc:
                exc.requests += requests
                raise
            requests += attempts
            total, articles, bad = self.parse_reply(
                subject, request_id, requests, lambda p=payload: _page(subject, p), "NewsAPI /v2/everything page"
            )
            frames.append(articles)
            if len(bad):
                rejects.append(bad.assign(source=f"newsapi {EVERYTHING} page {page}"))
            seen += len(articles) + len(bad)
            if seen >= total or len(articles) + len(bad) < self.page_size:
                break
        else:
            self._notes.append(f"{subject}: stopped after max_pages={self.max_pages} pages ({seen} of {total} results)")
        frames = [f for f in frames if len(f)]
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["public_at"])
        return SubjectItems(
            subject,
            {"news": self.stamp(rows.assign(ticker=subject), "news", request_id)},
            rejects=pd.concat(rejects, ignore_index=True) if rejects else empty_frame(REJECT_COLUMNS),
            requests=requests,
        )

    def _status_error(self, subject: str, exc: HttpStatusError, error: dict, requests: int) -> ProviderError:
        code, message = error.get("code"), error.get("message", "")
        described = f"NewsAPI {code}: {message}" if code else f"NewsAPI HTTP {exc.status}: {exc.text[:200]}"
        if exc.status in (401, 403) or code in AUTH_CODES:
            cls: type[ProviderError] = CredentialsRejectedError
        elif code == "rateLimited":
            cls = QuotaExceededError
        else:
            cls = BadResponseError
        return cls(f"{subject}: {described}", requests=requests, request_id=exc.request_id)


def _page(subject: str, payload: Any) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """(totalResults, the page's articles in news columns without date/stamp, rejected articles)."""
    if not isinstance(payload, dict):
        raise BadResponseError(f"{subject}: expected a JSON object, got {type(payload).__name__}")
    if payload.get("status") != "ok":
        code, message = payload.get("code", "?"), payload.get("message", "")
        raise BadResponseError(f"{subject}: NewsAPI status {payload.get('status')!r}: {code}: {message}")
    articles = payload["articles"]
    if not isinstance(articles, list):
        raise TypeError(f"articles is a {type(articles).__name__}, not a list")
    total = int(payload["totalResults"])
    if not articles:
        return total, pd.DataFrame(columns=["public_at"]), empty_frame(REJECT_COLUMNS)
    frame = pd.DataFrame([a if isinstance(a, dict) else {} for a in articles])
    for column in ("title", "description", "content", "url", "publishedAt"):
        if column not in frame:
            frame[column] = None
    public_at = alt.to_utc_naive(frame["publishedAt"])
    shaped = np.array([isinstance(a, dict) for a in articles])
    good = shaped & public_at.notna().to_numpy()
    raw = pd.Series([json.dumps(a, ensure_ascii=False)[:2000] for a in articles])
    reasons = np.where(shaped, "publishedAt " + frame["publishedAt"].map(repr) + " is not a timestamp", "not an object")
    bad = reject_rows("newsapi", "", subject, None, raw[~good].to_numpy(), reasons[~good])
    frame = frame[good]
    sources = (
        frame["source"].map(lambda s: s.get("name") if isinstance(s, dict) else None) if "source" in frame else None
    )
    description, content = frame["description"].fillna("").astype(str), frame["content"].fillna("").astype(str)
    body = (description + "\n\n" + content).str.strip()
    url = frame["url"].where(frame["url"].astype(bool) & frame["url"].notna())
    fallback = (frame["title"].astype(str) + "|" + frame["publishedAt"].astype(str)).map(_digest)
    items = pd.DataFrame(
        {
            "public_at": public_at[good],
            "item_id": url.fillna(fallback),
            "headline": frame["title"].fillna("").astype(str),
            "body": body,
            "source": sources,
            "url": url,
            "vendor_sentiment": np.nan,
        }
    )
    return total, items.reset_index(drop=True), bad


def _digest(text: str) -> str:
    return "sha1:" + hashlib.sha1(text.encode()).hexdigest()


class NewsFilesProvider(NewsProvider):
    """News the user already has, read once per resource instance: FNSPID daily-sentiment CSVs (one <TICKER>.csv per
    symbol) and Benzinga headline CSVs (idx,title,date,stock), told apart by their columns.

    FNSPID gives a day's mean news score (Sentiment_gpt, 1..5) without publication times: a day with News_flag 1 is
    one item, public at that session's close (so it counts for the NEXT session), vendor_sentiment (score - 3) / 2."""

    paths: list[str] = Field(default_factory=list, description="Files or folders of news CSVs (.csv, .csv.gz)")

    _table: pd.DataFrame | None = PrivateAttr(default=None)
    _rejects: pd.DataFrame | None = PrivateAttr(default=None)
    _undated_reported: bool = PrivateAttr(default=False)
    _notes: list[str] = PrivateAttr(default_factory=list)
    _before_calendar: dict[str, int] = PrivateAttr(default_factory=dict)
    _uncovered: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "files"

    def _files(self) -> list[Path]:
        return recording_files(self.paths, (".csv", ".csv.gz"), "news")

    def table(self) -> pd.DataFrame:
        """Every file's items, stamped with the session each counts for (see `rejects` for what did not load)."""
        if self._table is None:
            self._notes, self._before_calendar = [], {}
            read = [self._read(path) for path in self._files()]
            rows = [r for r, _ in read if len(r)]
            bad = [b for _, b in read if len(b)]
            self._rejects = pd.concat(bad, ignore_index=True) if bad else empty_frame(REJECT_COLUMNS)
            table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["public_at", "ticker"])
            self._table = self.stamp(table, "news", uuid.uuid4().hex)
        return self._table

    def rejects(self) -> pd.DataFrame:
        self.table()
        return self._rejects

    def subjects(self) -> list[str]:
        return super().subjects() or sorted(self.table()["ticker"].unique())

    def notes(self) -> list[str]:
        notes = list(self._notes)
        if self._before_calendar:
            first = alt._closes()[1][0].date()
            notes.append(
                f"{sum(self._before_calendar.values())} items before {first} (the calendar's first session) are "
                f"outside the platform's range and not read, in {len(self._before_calendar)} files: "
                + ", ".join(f"{name} ({n})" for name, n in sorted(self._before_calendar.items()))
            )
        if self._uncovered:
            notes.append(f"no items for {', '.join(self._uncovered)} in {self.paths}")
        return notes

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        table = self.table()
        mine = table[table["ticker"] == subject]
        if mine.empty and subject not in self._uncovered:
            self._uncovered.append(subject)
        rows = mine[mine["date"].between(pd.Timestamp(start), pd.Timestamp(end))]
        return SubjectItems(subject, {"news": rows.reset_index(drop=True)}, self._rejects_for(subject, start, end), 0)

    def _rejects_for(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The subject's rejects dated in [start, end]; rejects without a date or ticker go with the instance's first
        fetch (once, not with every ticker)."""
        rejects = self.rejects()
        dates = pd.to_datetime(rejects["date"], errors="coerce")
        undated = dates.isna() | rejects["ticker"].isna() | (rejects["ticker"] == "")
        dated = (rejects["ticker"] == subject) & dates.between(pd.Timestamp(start), pd.Timestamp(end))
        take = dated | (undated & (not self._undated_reported))
        self._undated_reported = True
        return rejects[take].reset_index(drop=True)

    def _read(self, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        try:
            text = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            return pd.DataFrame(), reject_rows(self.name, path.name, "", None, "", f"unreadable CSV: {exc}")
        columns = set(text.columns)
        if {"Date", "Sentiment_gpt", "News_flag"} <= columns:
            return self._fnspid(path, text)
        if {"title", "date", "stock"} <= columns:
            return self._benzinga(path, text)
        why = (
            "not a known news format (FNSPID: Date,Sentiment_gpt,News_flag; Benzinga: title,date,stock); "
            f"columns {sorted(columns)}"
        )
        self._notes.append(f"{path.name}: {why}")
        return pd.DataFrame(), reject_rows(self.name, path.name, "", None, ",".join(text.columns), why)

    def _fnspid(self, path: Path, text: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        ticker = path.name.split(".")[0].upper().replace("-", ".")
        day = alt.to_utc_naive(text["Date"]).dt.normalize()
        flag = pd.to_numeric(text["News_flag"].replace("", np.nan), errors="coerce")
        score = pd.to_numeric(text["Sentiment_gpt"].replace("", np.nan), errors="coerce")
        closes, sessions = alt._closes()
        at = sessions.get_indexer(day)
        close = pd.Series(np.where(at >= 0, closes[np.maximum(at, 0)], np.datetime64("NaT")), index=text.index)
        before = day.notna() & (day < sessions[0])
        if (before & (flag == 1)).any():
            self._before_calendar[path.name] = int((before & (flag == 1)).sum())
        reasons = pd.Series("", index=text.index, dtype=object)
        _flag(reasons, day.isna(), "Date " + text["Date"].map(repr) + " is not a date")
        _flag(reasons, flag.isna(), "News_flag " + text["News_flag"].map(repr) + " is not a number")
        news = ~before & (flag == 1)
        _flag(reasons, news & score.isna(), "Sentiment_gpt " + text["Sentiment_gpt"].map(repr) + " is not a number")
        _flag(reasons, news & day.notna() & (at < 0), day.dt.strftime("%Y-%m-%d (%A)") + " is not an NYSE session")
        reasons = reasons.str.removesuffix("; ")
        bad = reasons != ""
        counts_for = alt.session_for(close[bad]).fillna(day[bad])  # the session the item would have counted for
        rejects = reject_rows(self.name, path.name, ticker, counts_for, _lines(text[bad]), reasons[bad])
        keep = news & ~bad
        rows = pd.DataFrame(
            {
                "ticker": ticker,
                "public_at": close[keep].astype("datetime64[ns]"),
                "item_id": "fnspid:" + ticker + ":" + day[keep].dt.strftime("%Y-%m-%d"),
                "headline": "",
                "body": "",
                "source": "fnspid",
                "url": None,
                "vendor_sentiment": (score[keep] - 3) / 2,
            }
        )
        return rows.reset_index(drop=True), rejects

    def _benzinga(self, path: Path, text: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        index_column = text.columns[0] if text.columns[0] not in {"title", "date", "stock"} else None
        idx = text[index_column] if index_column else pd.Series(text.index.astype(str), index=text.index)
        public_at = alt.to_utc_naive(text["date"].replace("", np.nan))
        # A stamp at exactly local midnight carries a date without its time of day: it may have come out after
        # that day's close, so it is taken as public at the end of the day (it counts for the next session).
        dateonly = text["date"].str.contains(r"(?:^|\s)00:00:00(?:[+-]\d\d:?\d\d)?$", regex=True, na=False)
        public_at = public_at.where(~dateonly, public_at + pd.Timedelta(hours=23, minutes=59))
        ticker = text["stock"].str.strip().str.upper()
        before = public_at.notna() & (public_at < alt._closes()[1][0])
        if before.any():
            self._before_calendar[path.name] = int(before.sum())
        reasons = pd.Series("", index=text.index, dtype=object)
        _flag(reasons, idx.str.strip() == "", "no idx")
        _flag(reasons, public_at.isna(), "date " + text["date"].map(repr) + " is not a timestamp")
        _flag(reasons, ticker == "", "no ticker in column 'stock'")
        reasons = reasons.str.removesuffix("; ")
        bad = reasons != ""
        rejects = reject_rows(
            self.name, path.name, ticker[bad], alt.session_for(public_at[bad]), _lines(text[bad]), reasons[bad]
        )
        bad |= before
        rows = pd.DataFrame(
            {
                "ticker": ticker[~bad],
                "public_at": public_at[~bad],
                "item_id": "benzinga:" + idx[~bad].str.strip(),
                "headline": text.loc[~bad, "title"],
                "body": "",
                "source": "Benzinga",
                "url": None,
                "vendor_sentiment": np.nan,
            }
        )
        return rows.reset_index(drop=True), rejects


def _flag(reasons: pd.Series, mask: pd.Series, why: pd.Series | str) -> None:
    """Append `why` (per row or one text) to the reasons of the rows in `mask`."""
    if mask.any():
        reasons[mask] = reasons[mask] + (why[mask] if isinstance(why, pd.Series) else why) + "; "


def _lines(text: pd.DataFrame) -> list[str]:
    """The rows as the comma-joined text they were read from."""
    return [",".join(map(str, row)) for row in text.itertuples(index=False)]
