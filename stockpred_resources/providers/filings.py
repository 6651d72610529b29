"""SEC EDGAR filings (the submissions API) and the insider transactions of their Form 4 documents: from EDGAR itself
(`SecEdgarProvider`) or from recorded EDGAR responses in a folder (`SecFilesProvider`).

EDGAR's rules (https://www.sec.gov/os/accessing-edgar-data): every request names its sender in the User-Agent
("Sample Company Name admin@example.com") and a client sends at most 10 requests per second. Tickers map to CIKs
through a file: EDGAR's company_tickers.json or a Name,Symbol,CIK table such as ../shared/data's sp500_cik.csv (an
S&P 500 list that lacks TSLA, which joined the index in December 2020: use company_tickers.json for it). A share
class is BRK.B here and BRK-B on EDGAR.

Acceptance times are Eastern wall time despite their "Z" ("2022-02-04T20:11:27.000Z"). The evidence, in Tesla's
recorded submissions (../shared/data/alternative/sec/company_submission.json, 1,001 filings 2013-2022):
- EDGAR gives a filing accepted after 17:30 ET the next business day's filingDate (Section 16 forms 3/4/5: after
  22:00). Read as Eastern, of the 410 filings other than Section 16 forms and correspondence, letters, orders and
  notices, 370 of the 373 accepted by 17:30 carry that day's filingDate and 36 of the 37 accepted later the next
  business day's (the 10-K accepted 2022-02-04T20:11:27, a Friday, is filed 2022-02-07). Read as UTC, that 10-K was
  accepted at 15:11 EST, and 32 filings accepted before 17:30 ET would carry a later day's date;
- read as Eastern, every time lies in EDGAR's hours, 06:00 to 22:00 ET (but two notices of effectiveness the SEC
  itself stamped at 00:15); read as UTC, 149 filings would have been accepted between 01:00 and 05:59 ET, when EDGAR
  is shut.
`public_at` is the acceptance time localized to America/New_York (on a DST fold, the later reading), as tz-naive UTC.

Insider rows: the non-derivative transactions of each Form 4 whose issuer is the subject. A company's submissions
also list the Form 4s it filed as an insider of another issuer: those are skipped (and counted in the notes).
Amendments (4/A) restate an earlier filing's lines and are not read. XML is parsed with xml.etree (expat >= 2.4
refuses entity-expansion bombs; external entities are never fetched).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr

from stockpred_core.data import alternative as alt
from stockpred_core.data.schemas import REJECT_COLUMNS, empty_frame
from stockpred_core.io.http_client import HttpClient, ProviderError, UnknownTickerError
from stockpred_core.redaction import secrets_in
from stockpred_core.resilience.breaker import CircuitBreaker
from stockpred_core.resilience.retry import RetryPolicy
from stockpred_resources.providers.alternative import AltFetchReport, FilingsProvider, SubjectItems
from stockpred_resources.providers.http_settings import HttpSettings
from stockpred_resources.providers.rate_limit import Clock, RateLimiter, Sleep

EASTERN = "America/New_York"
EDGAR_REQUESTS_PER_MINUTE = 600  # EDGAR's fair-access limit: 10 requests per second
FORM4 = "4"
# A filing counting for session `start` was accepted after the previous session's close: at most a long holiday
# weekend earlier, and its filingDate is never before its acceptance day.
REACH = pd.Timedelta(days=7)
# The submissions API's per-filing arrays used here (filings.recent and every older page have the same shape).
SUBMISSION_FIELDS = ["accessionNumber", "filingDate", "reportDate", "acceptanceDateTime", "form", "items"]
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_RENDERING = re.compile(r"^xslF345X\d+/")  # primaryDocument names EDGAR's HTML rendering; the XML is beside it
_ACCESSION = re.compile(r"(\d{10})-?(\d{2})-?(\d{6})")
_OLDER_PAGE = re.compile(r"CIK(\d{10})-submissions-\d+$")
_PAGE_NAME = re.compile(r"CIK\d{10}-submissions-\d+\.json")
_DOCUMENT = re.compile(r"[\w.\-]+")
_TRANSACTION = {
    "transaction_date": "transactionDate/value",
    "code": "transactionCoding/transactionCode",
    "shares": "transactionAmounts/transactionShares/value",
    "price": "transactionAmounts/transactionPricePerShare/value",
    "acquired": "transactionAmounts/transactionAcquiredDisposedCode/value",
}


class EdgarConfigError(ProviderError):
    """The resource is configured so that EDGAR must not be asked (no contact in the User-Agent, no CIK map)."""

    kind, retryable = "config", False


def from_edgar(ticker: str) -> str:
    """EDGAR's BRK-B as the project writes it, BRK.B."""
    return ticker.strip().upper().replace("-", ".")


def load_cik_map(path: str | Path) -> dict[str, int]:
    """Ticker (BRK.B style) -> CIK, from EDGAR's company_tickers.json ({"0": {"cik_str", "ticker", "title"}}) or a
    CSV with Symbol and CIK columns (Name,Symbol,CIK). Raises EdgarConfigError when the file cannot be read so."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            pairs = [(e["ticker"], e["cik_str"]) for e in json.loads(path.read_text()).values()]
        else:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            pairs = list(zip(table["Symbol"], table["CIK"], strict=True))
        mapping: dict[str, int] = {}
        for ticker, cik in pairs:
            mapping.setdefault(from_edgar(str(ticker)), int(cik))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EdgarConfigError(f"{path}: not a ticker->CIK map ({type(exc).__name__}: {exc})", requests=0) from None
    if not mapping:
        raise EdgarConfigError(f"{path}: the ticker->CIK map is empty", requests=0)
    return mapping


def acceptance_to_utc(values: pd.Series) -> pd.Series:
    """EDGAR's acceptanceDateTime (Eastern wall time written with a "Z", see the module) as tz-naive UTC; NaT when
    it is not a date-time."""
    local = pd.to_datetime(values.astype(str).str.removesuffix("Z"), errors="coerce", format="ISO8601")
    later = np.zeros(len(local), dtype=bool)  # on the autumn fold, standard time: the later of the two moments
    eastern = local.dt.tz_localize(EASTERN, ambiguous=later, nonexistent="shift_forward")
    return eastern.dt.tz_convert("UTC").dt.tz_localize(None)


def filings_frame(block: dict[str, list], ticker: str, cik: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(filings with public_at, rows without a usable acceptance time or filing date as [raw, reason]) of one
    submissions block; raises KeyError/ValueError when the block is not shaped as documented."""
    raw = pd.DataFrame({f: block[f] for f in SUBMISSION_FIELDS})
    documents = block.get("primaryDocument", [""] * len(raw))
    frame = pd.DataFrame(
        {
            "ticker": ticker,
            "cik": cik,
            "accession": raw["accessionNumber"].astype(str),
            "form": raw["form"].astype(str),
            "filed_on": pd.to_datetime(raw["filingDate"], errors="coerce", format="%Y-%m-%d"),
            "public_at": acceptance_to_utc(raw["acceptanceDateTime"]),
            "items": raw["items"].astype(str).where(raw["items"] != "", None),
            "report_date": pd.to_datetime(raw["reportDate"], errors="coerce", format="%Y-%m-%d"),
            "document": pd.Series(documents, dtype=str).str.replace(_RENDERING, "", regex=True),
        }
    )
    bad = frame["public_at"].isna() | frame["filed_on"].isna() | (frame["accession"] == "")
    reasons = (
        "acceptanceDateTime "
        + raw["acceptanceDateTime"].map(repr)
        + " / filingDate "
        + raw["filingDate"].map(repr)
        + " / accessionNumber "
        + raw["accessionNumber"].map(repr)
        + ": not a usable filing time and id"
    )
    raw_text = raw.apply(lambda r: json.dumps(r.to_dict(), default=str), axis=1) if len(raw) else raw.index
    rejects = pd.DataFrame({"raw": raw_text, "reason": reasons, "date": frame["filed_on"]})[bad]
    return frame[~bad].reset_index(drop=True), rejects.reset_index(drop=True)


@dataclass
class Form4:
    """What one Form 4 XML says: its issuer, period, signature date, and its non-derivative transactions."""

    issuer_cik: int | None
    symbol: str
    period: pd.Timestamp
    signed_on: pd.Timestamp
    transactions: pd.DataFrame  # line (1-based, in the document), insider, transaction_date, code, acquired, ...
    bad: list[tuple[str, str]] = field(default_factory=list)  # (a transaction's XML, why it cannot be held)


def _transaction(text: dict[str, str], insider: str, line: int) -> dict[str, Any]:
    for name in ("transaction_date", "code", "shares", "acquired"):
        if not text[name]:
            raise ValueError(f"{_TRANSACTION[name]} is missing")
    if text["acquired"] not in ("A", "D"):
        raise ValueError(f"transactionAcquiredDisposedCode {text['acquired']!r} is neither A nor D")
    shares = float(text["shares"])
    if not math.isfinite(shares):
        raise ValueError(f"transactionShares {text['shares']!r} is not a number of shares")
    return {
        "line": line,
        "insider": insider,
        "transaction_date": pd.Timestamp(text["transaction_date"][:10]),
        "code": text["code"],
        "acquired": text["acquired"] == "A",
        "shares": shares,
        "price": float(text["price"]) if text["price"] else float("nan"),  # awards and gifts often state none
    }


def parse_form4(document: bytes | str) -> Form4:
    """The non-derivative transactions of a Form 4 XML (ownershipDocument); raises ValueError when it is not one."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None
    kind = (root.findtext("documentType") or "").strip()
    if root.tag != "ownershipDocument" or kind not in ("4", "4/A"):
        raise ValueError(f"not a Form 4 ownershipDocument (root <{root.tag}>, documentType {kind!r})")
    names = [n.text.strip() for n in root.iterfind("reportingOwner/reportingOwnerId/rptOwnerName") if n.text]
    insider = "; ".join(names)
    rows, bad = [], []
    for line, element in enumerate(root.iterfind("nonDerivativeTable/nonDerivativeTransaction"), start=1):
        text = {k: (element.findtext(p) or "").strip() for k, p in _TRANSACTION.items()}
        try:  # two identical lines of one form (the same sale held directly and through a trust) are two lots
            rows.append(_transaction(text, insider, line))
        except ValueError as exc:
            bad.append((ET.tostring(element, encoding="unicode")[:1000], str(exc)))
    cik = (root.findtext("issuer/issuerCik") or "").strip()
    columns = ["line", "insider", "transaction_date", "code", "acquired", "shares", "price"]
    return Form4(
        issuer_cik=int(cik) if cik.isdigit() else None,
        symbol=from_edgar(root.findtext("issuer/issuerTradingSymbol") or ""),
        period=pd.to_datetime((root.findtext("periodOfReport") or "")[:10], errors="coerce"),
        signed_on=pd.to_datetime((root.findtext("ownerSignature/signatureDate") or "")[:10], errors="coerce"),
        transactions=pd.DataFrame(rows, columns=columns),
        bad=bad,
    )


def insider_rows(form4: Form4, filing: pd.Series) -> pd.DataFrame:
    """The Form 4's transactions as insider rows of `filing` (its ticker, CIK, accession and public_at)."""
    keep = ["ticker", "cik", "accession", "public_at"]
    return form4.transactions.assign(**{c: filing[c] for c in keep})


class _Rejects:
    """Rejected source rows of one subject, in REJECT_COLUMNS."""

    def __init__(self, provider: str, ticker: str) -> None:
        self.provider, self.ticker, self.records = provider, ticker, []

    def add(self, source: str, date: Any, raw: str, reason: str) -> None:
        self.records.append({"source": source, "date": date, "raw": raw, "reason": reason})

    def add_frame(self, source: str, frame: pd.DataFrame) -> None:
        self.records += [{"source": source, **r} for r in frame[["date", "raw", "reason"]].to_dict("records")]

    def frame(self) -> pd.DataFrame:
        if not self.records:
            return empty_frame(REJECT_COLUMNS)
        now = pd.Timestamp.now(tz="UTC").tz_localize(None)
        frame = pd.DataFrame(self.records).assign(ticker=self.ticker, provider=self.provider, rejected_at=now)
        return frame[REJECT_COLUMNS]


class SecEdgarProvider(FilingsProvider, HttpSettings):
    """SEC EDGAR: each ticker's filings from the submissions API and the insider transactions of its Form 4s."""

    user_agent: str = Field(
        description='Who is asking, as EDGAR requires: "<name> <email>"; no default, requests are refused without one'
    )
    cik_map_file: str = Field(description="Ticker -> CIK: EDGAR's company_tickers.json or a Name,Symbol,CIK CSV")
    base_url: str = Field(default="https://data.sec.gov", description="Scheme and host of the submissions API")
    archives_url: str = Field(default="https://www.sec.gov", description="Scheme and host of the filing documents")
    insider_transactions: bool = Field(
        default=True, description="Fetch and parse each Form 4 of the window (one request per filing)"
    )
    requests_per_minute: float = Field(
        default=EDGAR_REQUESTS_PER_MINUTE, gt=0, le=EDGAR_REQUESTS_PER_MINUTE, description="EDGAR allows 10 a second"
    )

    _cik: dict[str, int] | None = PrivateAttr(default=None)
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "sec"

    def secrets(self) -> list[str]:
        return [*secrets_in(self.base_url), *secrets_in(self.archives_url)]

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close_http()

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, subjects: list[str] | None = None) -> AltFetchReport:
        self._notes = []
        return super().fetch(start, end, subjects)

    def notes(self) -> list[str]:
        return list(self._notes)

    def edgar_client(self, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> HttpClient:
        """The resource's one client (built on first use, User-Agent on every request); `clock` and `sleep` drive
        its pacing and retry waits (tests inject them)."""
        if self._client is None:
            self._client = HttpClient(
                self.base_url,
                timeout_s=self.timeout_s,
                retry=RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s),
                limiter=RateLimiter(self.requests_per_minute, self.requests_per_day, clock=clock, sleep=sleep),
                breaker=CircuitBreaker(self.circuit_failure_threshold, self.circuit_reset_s),
                headers={"User-Agent": self.user_agent},
                secrets=self.secrets(),
                sleep=sleep,
            )
        return self._client

    def cik_for(self, ticker: str) -> int:
        if self._cik is None:
            self._cik = load_cik_map(self.cik_map_file)
        cik = self._cik.get(from_edgar(ticker))
        if cik is None:
            raise UnknownTickerError(f"{ticker}: not in the ticker->CIK map {self.cik_map_file}", requests=0)
        return cik

    def _check_contact(self) -> None:
        if not _EMAIL.search(self.user_agent) or not _EMAIL.sub("", self.user_agent).strip():
            raise EdgarConfigError(
                f"user_agent {self.user_agent!r}: EDGAR requires a User-Agent naming the sender and a contact email "
                '("Sample Company Name admin@example.com"); nothing was requested',
                requests=0,
            )

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        self._check_contact()
        cik = self.cik_for(subject)
        client = self.edgar_client()
        spent = 0

        def get(path: str) -> tuple[Any, str]:
            nonlocal spent
            try:
                payload, request_id, attempts = client.get_json(path)
            except ProviderError as exc:
                exc.requests = spent = spent + exc.requests
                raise
            spent += attempts
            return payload, request_id

        payload, request_id = get(f"/submissions/CIK{cik:010d}.json")
        rejects = _Rejects(self.name, subject)
        recent = self._block(subject, cik, request_id, spent, lambda: payload["filings"]["recent"], rejects)
        pages = self.parse_reply(
            subject, request_id, spent, lambda: _older_pages(payload, recent, start), "filings.files"
        )
        parts = [recent]
        for page in pages:
            body, page_id = get(f"/submissions/{page}")
            parts.append(self._block(subject, cik, page_id, spent, lambda body=body: body, rejects))
        filings = pd.concat(parts, ignore_index=True).drop_duplicates("accession")
        insider = alt.empty("insider")
        if self.insider_transactions:
            insider, spent = self._insider(subject, client, filings, start, end, rejects, spent)
        rows = {"filings": filings.reindex(columns=alt.FILING_COLUMNS), "insider": insider}
        return SubjectItems(subject, rows=rows, rejects=_window_rejects(rejects.frame(), start, end), requests=spent)

    def _block(
        self, subject: str, cik: int, request_id: str, spent: int, get_block: Callable[[], dict], rejects: _Rejects
    ) -> pd.DataFrame:
        frame, bad = self.parse_reply(
            subject, request_id, spent, lambda: filings_frame(get_block(), subject, cik), "a submissions block"
        )
        rejects.add_frame("edgar submissions", bad)
        return self.stamp(frame, "filings", request_id).assign(document=frame["document"].to_numpy())

    def _insider(
        self,
        subject: str,
        client: HttpClient,
        filings: pd.DataFrame,
        start: pd.Timestamp,
        end: pd.Timestamp,
        rejects: _Rejects,
        spent: int,
    ) -> tuple[pd.DataFrame, int]:
        """Each Form 4 of the window fetched and parsed; a document that fails is a reject, its filing is kept."""
        form4s = filings[(filings["form"] == FORM4) & filings["date"].between(start, end)]
        parts, as_owner = [], 0
        for _, filing in form4s.iterrows():
            url = f"{self.archives_url.rstrip('/')}/Archives/edgar/data/{filing.cik}/"
            url += f"{filing.accession.replace('-', '')}/{filing.document}"
            if not _DOCUMENT.fullmatch(filing.document):
                why = f"{filing.accession}: primaryDocument {filing.document!r} is not a file name"
                rejects.add("edgar form4", filing.date, url, why)
                continue
            try:
                reply = client.get_document(url)
                spent += reply.attempts
                form4 = parse_form4(reply.body)
            except ProviderError as exc:
                spent += exc.requests
                rejects.add("edgar form4", filing.date, url, f"{filing.accession}: {exc}")
                continue
            except ValueError as exc:
                rejects.add("edgar form4", filing.date, f"{url} {reply.body[:200]!r}", f"{filing.accession}: {exc}")
                continue
            if form4.issuer_cik is None:
                rejects.add("edgar form4", filing.date, url, f"{filing.accession}: the document names no issuerCik")
                continue
            if form4.issuer_cik != filing.cik:
                as_owner += 1
                continue
            for raw, reason in form4.bad:
                rejects.add("edgar form4", filing.date, raw, f"{filing.accession}: {reason}")
            parts.append(self.stamp(insider_rows(form4, filing), "insider", reply.request_id))
        if as_owner:
            self._notes.append(
                f"{subject}: {as_owner} Form 4 filing(s) report the company as the insider of another issuer "
                "(skipped: their transactions are in another issuer's stock)"
            )
        frames = [p for p in parts if len(p)]
        return (pd.concat(frames, ignore_index=True) if frames else alt.empty("insider")), spent


def _older_pages(payload: dict, recent: pd.DataFrame, start: pd.Timestamp) -> list[str]:
    """The older submissions pages (filings.files) to fetch: only when the window reaches before the recent page's
    oldest filing, and only the pages that overlap it."""
    reach = start - REACH
    if len(recent) and recent["filed_on"].min() < reach:
        return []
    names = [p["name"] for p in payload["filings"].get("files", []) if pd.Timestamp(p["filingTo"]) >= reach]
    for name in names:
        if not _PAGE_NAME.fullmatch(name):
            raise ValueError(f"filings.files names {name!r}, not a submissions page")
    return names


def _window_rejects(rejects: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rejects of the window: each is reported in the partition of the first session on or after its date (a
    row without a date in every fetch)."""
    if rejects.empty:
        return rejects
    session = alt.session_for(pd.to_datetime(rejects["date"]))  # midnight: that day if a session, else the next
    return rejects[session.between(start, end).to_numpy() | rejects["date"].isna().to_numpy()].reset_index(drop=True)


@dataclass
class _Recordings:
    """A folder of EDGAR responses, read once: submissions per CIK, its tickers, Form 4 documents."""

    request_id: str
    blocks: dict[int, list[tuple[str, dict]]] = field(default_factory=dict)  # cik -> [(file name, block)]
    tickers: dict[str, int] = field(default_factory=dict)  # ticker -> cik
    form4s: list[tuple[str, Form4]] = field(default_factory=list)  # (file name, document)
    notes: list[str] = field(default_factory=list)


class SecFilesProvider(FilingsProvider):
    """Recorded EDGAR responses in a folder: submissions bodies (company_submission.json, CIK##########.json, older
    pages CIK##########-submissions-NNN.json; the CIK and tickers are read from the body) and Form 4 XML documents.

    A Form 4 file is joined to its filing (for the acceptance time) by the accession in its file name, else by issuer
    CIK and periodOfReport when exactly one Form 4 filing of the issuer matches. A document that joins no filing
    has no known public time: its transactions are rejects (dated by the document's signature), not rows. A Form 4
    filing without a document in the folder keeps its filing row; its missing transactions are noted (missing, not
    zero), as are the tickers without any recording.
    """

    path: str = Field(default="", description="A folder of recorded EDGAR submissions JSON and Form 4 XML files")

    _recordings: _Recordings | None = PrivateAttr(default=None)
    _notes: list[str] = PrivateAttr(default_factory=list)
    _uncovered: list[str] = PrivateAttr(default_factory=list)

    @property
    def name(self) -> str:
        return "sec_files"

    def subjects(self) -> list[str]:
        """The configured tickers, else every ticker of the recordings."""
        configured = super().subjects()
        if configured:
            return configured
        recordings = self.recordings()
        return list(dict.fromkeys([*recordings.tickers, *(doc.symbol for _, doc in recordings.form4s if doc.symbol)]))

    def fetch(self, start: pd.Timestamp, end: pd.Timestamp, subjects: list[str] | None = None) -> AltFetchReport:
        self._notes, self._uncovered = [], []
        return super().fetch(start, end, subjects)

    def notes(self) -> list[str]:
        uncovered = [f"no recordings for {', '.join(self._uncovered)} in {self.path}"] if self._uncovered else []
        loaded = self._recordings.notes if self._recordings is not None else []
        return [*loaded, *self._notes, *uncovered]

    def recordings(self) -> _Recordings:
        if self._recordings is None:
            root = Path(self.path).expanduser()
            if not self.path or not root.is_dir():
                raise EdgarConfigError(f"{self.path!r}: not a folder of EDGAR recordings", requests=0)
            recordings = _Recordings(request_id=uuid.uuid4().hex)
            for file in sorted(root.iterdir()):
                if file.suffix.lower() == ".json":
                    _read_submissions(file, recordings)
                elif file.suffix.lower() == ".xml":
                    _read_form4(file, recordings)
            self._recordings = recordings
        return self._recordings

    def fetch_subject(self, subject: str, start: pd.Timestamp, end: pd.Timestamp) -> SubjectItems:
        recordings = self.recordings()
        cik = recordings.tickers.get(subject)
        docs = [
            (n, d) for n, d in recordings.form4s if (cik is not None and d.issuer_cik == cik) or d.symbol == subject
        ]
        if cik is None and not docs:  # no coverage, which is not "no filings": noted, not a dead letter
            self._uncovered.append(subject)
            return SubjectItems(
                subject, rows={"filings": alt.empty("filings"), "insider": alt.empty("insider")}, requests=0
            )
        rejects = _Rejects(self.name, subject)
        parts = []
        for file_name, block in recordings.blocks.get(cik, []):
            try:
                frame, bad = filings_frame(block, subject, cik)
            except (KeyError, ValueError, TypeError) as exc:
                why = f"not a submissions block ({type(exc).__name__}: {exc}); none of its rows load"
                rejects.add(file_name, None, json.dumps(block, default=str)[:1000], why)
                continue
            rejects.add_frame(file_name, bad)
            parts.append(self.stamp(frame, "filings", recordings.request_id).assign(report_date=frame["report_date"]))
        filings = pd.concat(parts, ignore_index=True).drop_duplicates("accession") if parts else None
        insider, joined = self._join(subject, docs, filings, rejects)
        if filings is None:
            filings = alt.empty("filings")
        else:
            form4s = filings[(filings["form"] == FORM4) & filings["date"].between(start, end)]
            missing = len(set(form4s["accession"]) - joined)
            if missing:
                self._notes.append(
                    f"{subject}: {missing} Form 4 filing(s) counting for {start:%Y-%m-%d}..{end:%Y-%m-%d} have no XML "
                    f"in {self.path}: their insider transactions are missing (not zero)"
                )
        rows = {"filings": filings.reindex(columns=alt.FILING_COLUMNS), "insider": insider}
        return SubjectItems(subject, rows=rows, rejects=_window_rejects(rejects.frame(), start, end), requests=0)

    def _join(self, subject, docs, filings, rejects: _Rejects) -> tuple[pd.DataFrame, set[str]]:
        """Insider rows of the documents joined to a filing; the others' transactions become rejects."""
        parts, joined = [], set()
        for file_name, doc in docs:
            filing, why = _filing_of(file_name, doc, filings)
            if filing is None:
                signed = doc.signed_on if pd.notna(doc.signed_on) else doc.period
                reason = f"{why}: its acceptance time (public_at) is unknown, so it cannot be placed in time"
                for row in doc.transactions.to_dict("records"):
                    rejects.add(file_name, signed, json.dumps(row, default=str), reason)
                for raw, bad in doc.bad:
                    rejects.add(file_name, signed, raw, bad)
                continue
            joined.add(filing["accession"])
            for raw, bad in doc.bad:
                rejects.add(file_name, filing["date"], raw, f"{filing['accession']}: {bad}")
            parts.append(self.stamp(insider_rows(doc, filing), "insider", self.recordings().request_id))
        frames = [p for p in parts if len(p)]
        return (pd.concat(frames, ignore_index=True) if frames else alt.empty("insider")), joined


def _filing_of(file_name: str, doc: Form4, filings: pd.DataFrame | None) -> tuple[pd.Series | None, str]:
    """The filing a recorded Form 4 belongs to, or None and why not."""
    period = doc.period.strftime("%Y-%m-%d") if pd.notna(doc.period) else "unknown"
    where = f"{file_name} (issuer CIK {doc.issuer_cik}, {doc.symbol}, period {period})"
    if filings is None or filings.empty:
        return None, f"{where}: no submissions recording of the issuer"
    named = _ACCESSION.search(Path(file_name).stem)
    if named:
        accession = "-".join(named.groups())
        match = filings[filings["accession"] == accession]
        return (
            (match.iloc[0], "") if len(match) else (None, f"{where}: accession {accession} is not in the submissions")
        )
    match = filings[(filings["form"] == FORM4) & (filings["report_date"] == doc.period)]
    if len(match) == 1:
        return match.iloc[0], ""
    return None, f"{where}: {len(match)} Form 4 filings of the issuer have that period; name the file by accession"


def _read_submissions(file: Path, recordings: _Recordings) -> None:
    try:
        body = json.loads(file.read_bytes())
    except ValueError as exc:
        recordings.notes.append(f"{file.name}: skipped, not JSON ({exc})")
        return
    older = _OLDER_PAGE.search(file.stem)
    if older and isinstance(body, dict) and "accessionNumber" in body:
        recordings.blocks.setdefault(int(older.group(1)), []).append((file.name, body))
        return
    if not (
        isinstance(body, dict)
        and "cik" in body
        and isinstance(body.get("filings"), dict)
        and "recent" in body["filings"]
    ):
        recordings.notes.append(f"{file.name}: skipped, not an EDGAR submissions body")
        return
    try:
        cik, tickers = int(body["cik"]), [from_edgar(t) for t in body.get("tickers", [])]
    except (ValueError, TypeError, AttributeError) as exc:
        recordings.notes.append(f"{file.name}: skipped, its cik/tickers are unreadable ({exc})")
        return
    recordings.blocks.setdefault(cik, []).insert(0, (file.name, body["filings"]["recent"]))
    for ticker in tickers:
        recordings.tickers[ticker] = cik


def _read_form4(file: Path, recordings: _Recordings) -> None:
    try:
        recordings.form4s.append((file.name, parse_form4(file.read_bytes())))
    except ValueError as exc:
        recordings.notes.append(f"{file.name}: skipped, {exc}")
