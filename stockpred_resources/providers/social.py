"""Posts naming a ticker: the Twitter API v2 recent search (`TwitterProvider`) and the recordings a user already has
(`SocialFilesProvider`: stocknet's tweets as JSON lines), mapped to `alt.SOCIAL_COLUMNS`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import fsspec
import httpx
import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr

from stockpred_core.data import alternative as alt
from stockpred_core.data.schemas import REJECT_COLUMNS, empty_frame
from stockpred_core.io.http_client import (
    BadResponseError,
    HttpClient,
    HttpStatusError,
    ProviderError,
    QuotaExceededError,
)
from stockpred_core.redaction import secrets_in
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_resources.providers.alternative import SocialProvider, SubjectItems, recording_files
from stockpred_resources.providers.http_settings import HttpSettings
from stockpred_resources.providers.news import CredentialsRejectedError, public_window, reject_rows
from stockpred_resources.providers.rate_limit import RateLimiter

RECENT_SEARCH = "/2/tweets/search/recent"
TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"  # v1.1's created_at: "Thu Jan 02 15:45:02 +0000 2014"


class RateWindow(httpx.BaseTransport):
    """Twitter's rate-limit window, read from every reply's x-rate-limit-* headers (reset in epoch seconds). Before a
    request in a spent window it waits for the reset when that is at most `max_wait_s` away, else raises
    QuotaExceededError without sending; a 429 whose reset is further away raises at once instead of being retried."""

    def __init__(
        self, inner: httpx.BaseTransport, max_wait_s: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.inner, self.max_wait_s, self.clock, self.sleep = inner, max_wait_s, clock, sleep
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset: float | None = None
        self.waited_s = 0.0

    def admit(self) -> None:
        if self.remaining != 0 or self.reset is None:
            return
        wait = self.reset - self.clock()
        if wait > self.max_wait_s:
            raise QuotaExceededError(self._spent(wait), requests=0)
        if wait > 0:
            self.sleep(wait)
            self.waited_s += wait
        self.remaining = None  # a new window: its size is known from the next reply

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.admit()
        response = self.inner.handle_request(request)
        self._observe(response)
        if response.status_code == 429 and self.reset is not None:
            self.remaining = 0
            wait = self.reset - self.clock()
            if wait > self.max_wait_s:
                response.close()
                raise QuotaExceededError(f"HTTP 429 Too Many Requests; {self._spent(wait)}")
        return response

    def close(self) -> None:
        self.inner.close()

    def _observe(self, response: httpx.Response) -> None:
        headers = response.headers
        try:
            if "x-rate-limit-reset" in headers:
                self.reset = float(headers["x-rate-limit-reset"])
            if "x-rate-limit-remaining" in headers:
                self.remaining = int(headers["x-rate-limit-remaining"])
            if "x-rate-limit-limit" in headers:
                self.limit = int(headers["x-rate-limit-limit"])
        except ValueError:
            pass  # a malformed header says nothing; the server's 429 still would

    def _spent(self, wait: float) -> str:
        at = pd.Timestamp(self.reset, unit="s").strftime("%Y-%m-%d %H:%M:%S UTC")
        size = f" of {self.limit} requests" if self.limit is not None else ""
        return (
            f"Twitter rate-limit window{size} spent; it resets at {at}, {wait:.0f}s away, "
            f"more than max_rate_wait_s={self.max_wait_s:g}"
        )


class TwitterProvider(SocialProvider, HttpSettings):
    """The v2 recent search (the last 7 days only), one cashtag at a time: `$<TICKER> lang:en -is:retweet` by default
    (the cashtag operator needs a paid access level). Pages follow meta.next_token until it is absent.

    Retweets are left out by default: they repeat the text (sentiment) and would inflate message volume with copies;
    `exclude_retweets=False` keeps them, as the stocknet recordings do."""

    bearer_token: str = Field(description="App bearer token (pass dg.EnvVar('TWITTER_BEARER_TOKEN'))")
    base_url: str = Field(default="https://api.twitter.com", description="Scheme and host of the API")
    language: str | None = Field(default="en", description="lang: operator; None searches every language")
    exclude_retweets: bool = Field(default=True, description="Add -is:retweet to the query")
    max_results: int = Field(default=100, ge=10, le=100, description="Tweets per page (the API allows 10..100)")
    max_pages: int = Field(default=20, ge=1, description="Pages fetched per ticker at most")
    max_rate_wait_s: float = Field(
        default=60.0, ge=0, description="Wait for a spent rate-limit window's reset when it is this close, else fail"
    )
    requests_per_minute: float = Field(default=60.0, gt=0, description="Client-side rate limit (450 per 15 min app)")

    _sleep: Callable[[float], None] = PrivateAttr(default=time.sleep)
    _clock: Callable[[], float] = PrivateAttr(default=time.time)
    _window: RateWindow | None = PrivateAttr(default=None)
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "twitter"

    def secrets(self) -> list[str]:
        return [self.bearer_token, *secrets_in(self.base_url)]

    def notes(self) -> list[str]:
        waited = self._window.waited_s if self._window is not None else 0.0
        return [*self._notes, *([f"waited {waited:.0f}s for rate-limit windows to reset"] if waited else [])]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_http()

    def twitter_client(self) -> HttpClient:
        """HttpSettings' client, with the rate window as its transport and this resource's sleep for its retries."""
        if self._client is None:
            self._window = RateWindow(httpx.HTTPTransport(), self.max_rate_wait_s, self._clock, self._sleep)
            self._client = HttpClient(
                self.base_url,
                timeout_s=self.timeout_s,
                retry=RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s),
                limiter=RateLimiter(self.requests_per_minute, self.requests_per_day),
                breaker=CircuitBreaker(self.circuit_failure_threshold, self.circuit_reset_s),
                headers={"Authorization": f"Bearer {self.bearer_token}"},
                secrets=self.secrets(),
                sleep=self._sleep,
                transport=self._window,
            )
        return self._client

    def query(self, ticker: str) -> str:
        terms = [f"${ticker}"]
        if self.language:
            terms.append(f"lang:{self.language}")
        if self.exclude_retweets:
            terms.append("-is:retweet")
        return " ".join(terms)

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        window = public_window(start, end)
        if window is not None:  # the API refuses an end_time less than 10 seconds before the request
            window = (
                window[0],
                min(window[1], pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(seconds=30)),
            )
        if window is None or window[1] <= window[0]:
            return SubjectItems(subject, {"social": alt.empty("social")}, requests=0)
        client = self.twitter_client()
        params = {
            "query": self.query(subject),
            "start_time": window[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_time": window[1].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "max_results": self.max_results,
            "tweet.fields": "created_at,lang,public_metrics,author_id",
            "expansions": "author_id",
            "user.fields": "public_metrics",
        }
        frames, rejects, requests, request_id, token = [], [], 0, None, None
        for page in range(1, self.max_pages + 1):
            try:
                self._window.admit()
                payload, request_id, attempts = client.get_json(
                    RECENT_SEARCH, {**params, **({"next_token": token} if token else {})}
                )
            except HttpStatusError as exc:
                raise _status_error(subject, exc, requests + exc.requests) from None
            except QuotaExceededError as exc:  # raised by the rate window, which does not know the ticker
                raise QuotaExceededError(
                    f"{subject}: {exc}", requests=requests + exc.requests, request_id=exc.request_id
                ) from None
            except ProviderError as exc:
                exc.requests += requests
                raise
            requests += attempts
            tweets, bad, token = self.parse_reply(
                subject, request_id, requests, lambda p=payload: _page(subject, p), "recent search page"
            )
            frames.append(tweets)
            if len(bad):
                rejects.append(bad.assign(source=f"twitter {RECENT_SEARCH} page {page}"))
            if not token:
                break
        else:
            self._notes.append(f"{subject}: stopped after max_pages={self.max_pages} pages; more tweets were available")
        frames = [f for f in frames if len(f)]
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["public_at"])
        return SubjectItems(
            subject,
            {"social": self.stamp(rows.assign(ticker=subject), "social", request_id)},
            rejects=pd.concat(rejects, ignore_index=True) if rejects else empty_frame(REJECT_COLUMNS),
            requests=requests,
        )


def _status_error(subject: str, exc: HttpStatusError, requests: int) -> ProviderError:
    """A 4xx with its problem body ({"title", "detail", "type"}) named: 401/403 refuse the credentials."""
    try:
        body = json.loads(exc.text)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("title" in body or "detail" in body):
        described = f"Twitter HTTP {exc.status} {body.get('title', '')}: {body.get('detail', '')}"
        if body.get("type"):
            described += f" ({body['type']})"
    else:
        described = f"Twitter HTTP {exc.status}: {exc.text[:200]}"
    cls = CredentialsRejectedError if exc.status in (401, 403) else BadResponseError
    return cls(f"{subject}: {described}", requests=requests, request_id=exc.request_id)


def _page(subject: str, payload: Any) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(the page's tweets in social columns without date/stamp, rejected tweets, the next page's token)."""
    if not isinstance(payload, dict):
        raise BadResponseError(f"{subject}: expected a JSON object, got {type(payload).__name__}")
    meta = payload["meta"]
    token = meta.get("next_token")
    data = payload.get("data", [])
    if "data" not in payload and payload.get("errors"):
        first = payload["errors"][0]
        raise BadResponseError(f"{subject}: Twitter: {first.get('title', '')}: {first.get('detail', first)}")
    if not isinstance(data, list):
        raise TypeError(f"data is a {type(data).__name__}, not a list")
    if not data:
        return pd.DataFrame(columns=["public_at"]), empty_frame(REJECT_COLUMNS), token
    users = {
        u["id"]: u.get("public_metrics", {}).get("followers_count")
        for u in payload.get("includes", {}).get("users", [])
    }
    shaped = np.array([isinstance(t, dict) and bool(t.get("id")) for t in data])
    tweets = pd.DataFrame([t if ok else {} for t, ok in zip(data, shaped, strict=True)])
    for column in ("id", "text", "created_at", "author_id", "lang", "public_metrics"):
        if column not in tweets:
            tweets[column] = None
    public_at = alt.to_utc_naive(tweets["created_at"])
    good = shaped & public_at.notna().to_numpy()
    reasons = np.where(shaped, "created_at " + tweets["created_at"].map(repr) + " is not a timestamp", "no tweet id")
    raw = [json.dumps(t, ensure_ascii=False)[:2000] for t in data]
    bad = reject_rows("twitter", "", subject, None, np.array(raw, dtype=object)[~good], reasons[~good])
    tweets = tweets[good]
    metrics = tweets["public_metrics"].map(lambda m: m if isinstance(m, dict) else {})
    rows = pd.DataFrame(
        {
            "public_at": public_at[good],
            "item_id": tweets["id"].astype(str),
            "text": tweets["text"].fillna("").astype(str),
            "author_id": tweets["author_id"],
            "author_followers": pd.to_numeric(tweets["author_id"].map(users), errors="coerce"),
            "reposts": pd.to_numeric(metrics.map(lambda m: m.get("retweet_count")), errors="coerce"),
            "likes": pd.to_numeric(metrics.map(lambda m: m.get("like_count")), errors="coerce"),
            "lang": tweets["lang"],
        }
    )
    return rows.reset_index(drop=True), bad, token


class SocialFilesProvider(SocialProvider):
    """Tweets the user already has as JSON lines (.jsonl, .jsonl.gz; stocknet's repack: ticker, id_str, created_at in
    Twitter's v1.1 format, text, lang, retweet_count, favorite_count, user.id_str, user.followers_count), read once
    per resource instance. A tweet counts for its collection `ticker`."""

    paths: list[str] = Field(default_factory=list, description="JSON-lines files or folders of them")

    _table: pd.DataFrame | None = PrivateAttr(default=None)
    _rejects: pd.DataFrame | None = PrivateAttr(default=None)
    _undated_reported: bool = PrivateAttr(default=False)
    _uncovered: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "files"

    def _files(self) -> list[Path]:
        return recording_files(self.paths, (".jsonl", ".jsonl.gz"), "social")

    def table(self) -> pd.DataFrame:
        """Every file's tweets, stamped with the session each counts for (see `rejects` for what did not load)."""
        if self._table is None:
            read = [_read_tweets(path, self.name) for path in self._files()]
            rows = [r for r, _ in read if len(r)]
            bad = [b for _, b in read if len(b)]
            self._rejects = pd.concat(bad, ignore_index=True) if bad else empty_frame(REJECT_COLUMNS)
            table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["public_at", "ticker"])
            self._table = self.stamp(table, "social", uuid.uuid4().hex)
        return self._table

    def rejects(self) -> pd.DataFrame:
        self.table()
        return self._rejects

    def subjects(self) -> list[str]:
        return super().subjects() or sorted(self.table()["ticker"].unique())

    def notes(self) -> list[str]:
        return [f"no tweets for {', '.join(self._uncovered)} in {self.paths}"] if self._uncovered else []

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        table = self.table()
        mine = table[table["ticker"] == subject]
        if mine.empty and subject not in self._uncovered:
            self._uncovered.append(subject)
        rows = mine[mine["date"].between(pd.Timestamp(start), pd.Timestamp(end))].reset_index(drop=True)
        rejects = self.rejects()
        dates = pd.to_datetime(rejects["date"], errors="coerce")
        undated = dates.isna() | rejects["ticker"].isna() | (rejects["ticker"] == "")
        dated = (rejects["ticker"] == subject) & dates.between(pd.Timestamp(start), pd.Timestamp(end))
        take = dated | (undated & (not self._undated_reported))  # undated ones once per instance, not per ticker
        self._undated_reported = True
        return SubjectItems(subject, {"social": rows}, rejects[take].reset_index(drop=True), requests=0)


def _read_tweets(path: Path, provider: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tweets in social columns without date/stamp, rejected lines with their text and reason) of one file."""
    records, bad = [], []
    with fsspec.open(str(path), "rt", compression="infer", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                tweet = json.loads(line)
            except ValueError as exc:
                bad.append((number, line, "", f"line {number}: not JSON ({exc})"))
                continue
            if not isinstance(tweet, dict):
                bad.append((number, line, "", f"line {number}: not a JSON object"))
                continue
            records.append((number, line, tweet))
    fields = ("ticker", "id_str", "created_at", "text", "lang", "retweet_count", "favorite_count")
    users = [t.get("user") if isinstance(t.get("user"), dict) else {} for _, _, t in records]
    tweets = pd.DataFrame(
        {
            **{c: [t.get(c) for _, _, t in records] for c in fields},
            "user.id_str": [u.get("id_str") for u in users],
            "user.followers_count": [u.get("followers_count") for u in users],
        },
        dtype=object,
    )
    numbers, lines = [n for n, _, _ in records], [line.rstrip("\n") for _, line, _ in records]
    ticker = tweets["ticker"].fillna("").astype(str).str.strip().str.upper()
    public_at = pd.to_datetime(tweets["created_at"], format=TWITTER_TIME, errors="coerce", utc=True).dt.tz_localize(
        None
    )
    counts = {
        c: pd.to_numeric(tweets[c], errors="coerce")
        for c in ("retweet_count", "favorite_count", "user.followers_count")
    }
    reasons = pd.Series("", index=tweets.index, dtype=object)

    def flag(mask: pd.Series, why: pd.Series | str) -> None:
        if mask.any():
            reasons[mask] = reasons[mask] + (why[mask] if isinstance(why, pd.Series) else why) + "; "

    flag(ticker == "", "no ticker")
    flag(tweets["id_str"].isna() | (tweets["id_str"].astype(str).str.strip() == ""), "no id_str")
    flag(tweets["created_at"].isna(), "no created_at")
    flag(
        tweets["created_at"].notna() & public_at.isna(),
        "created_at " + tweets["created_at"].map(repr) + " is not Twitter's time format",
    )
    for column, values in counts.items():
        flag(tweets[column].notna() & values.isna(), f"{column} " + tweets[column].map(repr) + " is not a number")
    reasons = reasons.str.removesuffix("; ")
    wrong = (reasons != "").to_numpy()
    where = np.array([f"line {n}: " for n in numbers], dtype=object)
    rejects = [
        reject_rows(provider, path.name, "", None, [b[1].rstrip("\n") for b in bad], [b[3] for b in bad]),
        reject_rows(
            provider,
            path.name,
            ticker[wrong],
            alt.session_for(public_at[wrong]),
            np.array(lines, dtype=object)[wrong],
            where[wrong] + reasons[wrong].to_numpy(),
        ),
    ]
    ok = ~wrong
    rows = pd.DataFrame(
        {
            "ticker": ticker[ok],
            "public_at": public_at[ok],
            "item_id": tweets.loc[ok, "id_str"].astype(str),
            "text": tweets.loc[ok, "text"].fillna("").astype(str),
            "author_id": tweets.loc[ok, "user.id_str"],
            "author_followers": counts["user.followers_count"][ok],
            "reposts": counts["retweet_count"][ok],
            "likes": counts["favorite_count"][ok],
            "lang": tweets.loc[ok, "lang"],
        }
    )
    rejected = [r for r in rejects if len(r)]
    return rows.reset_index(drop=True), pd.concat(rejected, ignore_index=True) if rejected else empty_frame(
        REJECT_COLUMNS
    )
