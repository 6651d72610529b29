"""The SEC EDGAR providers: the submissions API and Form 4 documents served by a real local HTTP server from the real
recordings (Tesla's submissions, Snowflake's Form 4), and the files provider reading those recordings directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from support.alt_sec_fred_bodies import SNOW_FORM4, snow_submissions, split_submissions
from support.recorded_server import RecordedServer, Reply

from stockpred_core.data import alternative as alt
from stockpred_core.data.schemas import FAILURE_COLUMNS, REJECT_COLUMNS
from stockpred_resources.providers.filings import (
    SecEdgarProvider,
    SecFilesProvider,
    acceptance_to_utc,
    load_cik_map,
    parse_form4,
)
from stockpred_resources.providers.rate_limit import RateLimiter

T = pd.Timestamp
AGENT = "stockpred-tests ops@stockpred.example"
TSLA_SUBMISSIONS = "/submissions/CIK0001318605.json"
SNOW_SUBMISSIONS = "/submissions/CIK0001640147.json"
# Snowflake's Form 4 (form4.snow.xml): its six non-derivative transactions, as the document states them.
SNOW_TRANSACTIONS = [
    ("2022-12-13", "M", True, 200000.0, 8.88),
    ("2022-12-13", "S", False, 73170.0, 150.841),
    ("2022-12-13", "S", False, 74907.0, 151.814),
    ("2022-12-13", "S", False, 41986.0, 152.655),
    ("2022-12-13", "S", False, 5496.0, 153.872),
    ("2022-12-13", "S", False, 4441.0, 154.76),
]
# Tesla's two Form 4 filings counting for 2022-01-24..2022-02-04 (accepted 01-31 and 02-03 after the close).
TSLA_FORM4_PATHS = [
    "/Archives/edgar/data/1318605/000179056522000001/edgardoc.xml",
    "/Archives/edgar/data/1318605/000177134022000001/edgardoc.xml",
]
# Forms that are correspondence or the SEC's own letters, orders and notices (not filed to be disseminated).
SEC_OR_LETTERS = ["CORRESP", "UPLOAD", "SEC STAFF LETTER", "CT ORDER", "EFFECT", "LETTER"]


@pytest.fixture(scope="module")
def sec_dir(shared_data: Path) -> Path:
    return shared_data / "alternative" / "sec"


@pytest.fixture(scope="module")
def tesla(sec_dir: Path) -> dict:
    return json.loads((sec_dir / "company_submission.json").read_text())


@pytest.fixture
def edgar(server: RecordedServer, sec_dir: Path) -> Iterator:
    made: list[SecEdgarProvider] = []

    def make(**config) -> SecEdgarProvider:
        defaults = {
            "user_agent": AGENT,
            "cik_map_file": str(sec_dir / "company_tickers.json"),
            "base_url": server.url,
            "archives_url": server.url,
            "max_attempts": 3,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.005,
        }
        made.append(SecEdgarProvider(**{**defaults, **config}))
        return made[-1]

    yield make
    for provider in made:
        provider.close_http()


def serve_tesla(server: RecordedServer, tesla: dict) -> None:
    server.route(TSLA_SUBMISSIONS, Reply.json(json.dumps(tesla)))


def test_cik_map_from_edgar_company_tickers(sec_dir: Path) -> None:
    ciks = load_cik_map(sec_dir / "company_tickers.json")
    assert len(ciks) == 9610
    assert (ciks["TSLA"], ciks["SNOW"], ciks["AAPL"]) == (1318605, 1640147, 320193)
    assert ciks["BRK.B"] == 1067983 and "BRK-B" not in ciks  # EDGAR's BRK-B is BRK.B here


def test_cik_map_from_the_sp500_table(sec_dir: Path) -> None:
    ciks = load_cik_map(sec_dir / "sp500_cik.csv")
    assert len(ciks) == 505 and (ciks["MMM"], ciks["ABT"], ciks["BRK.B"], ciks["BF.B"]) == (66740, 1800, 1067983, 14693)
    assert "TSLA" not in ciks  # an S&P 500 list from before Tesla joined the index (December 2020)


def test_edgar_acceptance_times_are_eastern_wall_time(tesla: dict) -> None:
    """The module's evidence: read as Eastern, the times obey EDGAR's 17:30 filing-date cutoff and its hours."""
    recent = pd.DataFrame(tesla["filings"]["recent"])
    wall = pd.to_datetime(recent["acceptanceDateTime"].str.removesuffix("Z"))
    own = ~recent["form"].isin(["3", "4", "5", "3/A", "4/A", "5/A", *SEC_OR_LETTERS])
    same_day = wall.dt.normalize() == pd.to_datetime(recent["filingDate"])
    by_cutoff = wall.dt.hour * 60 + wall.dt.minute <= 17 * 60 + 30
    assert (own.sum(), (own & by_cutoff).sum(), (own & ~by_cutoff).sum()) == (410, 373, 37)
    assert ((own & by_cutoff & same_day).sum(), (own & ~by_cutoff & ~same_day).sum()) == (370, 36)
    as_utc = wall.dt.tz_localize("UTC").dt.tz_convert("America/New_York").dt.tz_localize(None)
    utc_by_cutoff = as_utc.dt.hour * 60 + as_utc.dt.minute <= 17 * 60 + 30
    utc_same_day = as_utc.dt.normalize() == pd.to_datetime(recent["filingDate"])
    assert (own & utc_by_cutoff & ~utc_same_day).sum() == 32  # UTC would break the cutoff rule 32 times
    assert (wall.dt.hour < 6).sum() == 2 and (as_utc.dt.hour < 6).sum() == 149  # EDGAR opens at 06:00 ET
    parsed = acceptance_to_utc(pd.Series(["2022-02-04T20:11:27.000Z", "2022-07-06T18:37:17.000Z", "nonsense"]))
    assert parsed.tolist()[:2] == [T("2022-02-05 01:11:27"), T("2022-07-06 22:37:17")] and pd.isna(parsed[2])


def test_edgar_filings_of_a_window_by_the_session_rule(server: RecordedServer, edgar, tesla: dict) -> None:
    """Accepted before the close: that session; after it (or on a weekend): the next session."""
    serve_tesla(server, tesla)
    report = edgar(tickers=["TSLA"], insider_transactions=False).fetch(T("2022-01-24"), T("2022-02-07"))

    filings = report.rows["filings"].set_index("accession")
    assert list(report.rows["filings"].columns) == alt.FILING_COLUMNS and report.failures.empty
    expected = {  # accession: (form, filed_on, accepted (ET wall), date)
        "0001193125-22-016882": ("CORRESP", "2022-01-25", "2022-01-25 13:06:29", "2022-01-25"),
        "0001564590-22-002476": ("8-K", "2022-01-26", "2022-01-26 16:26:43", "2022-01-27"),
        "0001790565-22-000001": ("4", "2022-01-31", "2022-01-31 19:37:05", "2022-02-01"),
        "0001771340-22-000001": ("4", "2022-02-03", "2022-02-03 19:38:47", "2022-02-04"),
        "0000950170-22-000796": ("10-K", "2022-02-07", "2022-02-04 20:11:27", "2022-02-07"),  # a Friday evening
    }
    assert sorted(filings.index) == sorted(expected)
    for accession, (form, filed_on, accepted, date) in expected.items():
        row = filings.loc[accession]
        public_at = T(accepted).tz_localize("America/New_York").tz_convert("UTC").tz_localize(None)
        assert (row.form, row.filed_on, row.public_at, row.date) == (form, T(filed_on), public_at, T(date))
    assert filings.loc["0001564590-22-002476", "items"] == "2.02,9.01" and pd.isna(
        filings.loc["0001790565-22-000001", "items"]
    )
    assert (filings["ticker"] == "TSLA").all() and (filings["cik"] == 1318605).all()
    assert (filings["provider"] == "sec").all() and report.requests == 1
    [hit] = server.hits
    assert hit.path == TSLA_SUBMISSIONS and hit.headers["user-agent"] == AGENT
    assert (filings["request_id"] == hit.headers["x-request-id"]).all()


def test_edgar_parses_form4_transactions(server: RecordedServer, edgar, tesla: dict, sec_dir: Path) -> None:
    server.route(SNOW_SUBMISSIONS, Reply.json(json.dumps(snow_submissions(tesla))))
    document = "/Archives/edgar/data/1640147/000000000022000001/form4.snow.xml"  # the rendering prefix dropped
    server.route(document, Reply(body=(sec_dir / "form4.snow.xml").read_bytes(), content_type="text/xml"))
    report = edgar(tickers=["SNOW"]).fetch(T("2022-12-12"), T("2022-12-16"))

    insider = report.rows["insider"]
    assert list(insider.columns) == alt.INSIDER_COLUMNS and report.failures.empty and report.rejects.empty
    got = list(
        zip(
            insider["transaction_date"].dt.strftime("%Y-%m-%d"),
            insider.code,
            insider.acquired,
            insider.shares,
            insider.price,
            strict=True,
        )
    )
    assert got == SNOW_TRANSACTIONS
    accepted = T(SNOW_FORM4["acceptanceDateTime"][:19]).tz_localize("America/New_York").tz_convert("UTC")
    assert (insider["public_at"] == accepted.tz_localize(None)).all()
    assert (insider["date"] == T("2022-12-15")).all()  # accepted at 18:31 ET on the 14th, after the close
    assert (insider["insider"] == "Scarpelli Michael").all() and (
        insider["accession"] == SNOW_FORM4["accessionNumber"]
    ).all()
    assert (insider["ticker"] == "SNOW").all() and (insider["cik"] == 1640147).all()
    assert report.rows["filings"]["accession"].tolist() == [SNOW_FORM4["accessionNumber"]]
    assert [h.path for h in server.hits] == [SNOW_SUBMISSIONS, document] and report.requests == 2
    assert all(h.headers["user-agent"] == AGENT for h in server.hits)  # the archives' request too
    assert (insider["request_id"] == server.hits[1].headers["x-request-id"]).all()


def test_edgar_broken_form4_is_a_reject_and_its_filing_stays(server: RecordedServer, edgar, tesla: dict) -> None:
    serve_tesla(server, tesla)
    server.route(TSLA_FORM4_PATHS[0], Reply.text("<ownershipDocument><issuer><issuerCik>0001318605", 200, "text/xml"))
    server.route(TSLA_FORM4_PATHS[1], Reply.text("<html>Not Found</html>", 404, "text/html"))
    report = edgar(tickers=["TSLA"]).fetch(T("2022-01-24"), T("2022-02-04"))

    assert report.failures.empty and report.rows["insider"].empty
    assert len(report.rows["filings"]) == 4 and (report.rows["filings"]["form"] == "4").sum() == 2
    rejects = report.rejects.set_index("reason")
    assert list(report.rejects.columns) == REJECT_COLUMNS and len(rejects) == 2
    missing, broken = sorted(report.rejects["reason"])
    assert broken.startswith("0001790565-22-000001: not well-formed XML")
    assert missing.startswith("0001771340-22-000001: GET ") and "HTTP 404" in missing
    assert report.rejects["raw"].str.contains("/Archives/edgar/data/1318605/").all()
    assert sorted(report.rejects["date"]) == [T("2022-02-01"), T("2022-02-04")]
    assert report.requests == 3  # the 404 is not retried


def test_edgar_skips_form4s_of_another_issuer(server: RecordedServer, edgar, tesla: dict, sec_dir: Path) -> None:
    """A company's submissions list the Form 4s it files as an insider elsewhere: not trades in its own stock."""
    serve_tesla(server, tesla)
    snow = (sec_dir / "form4.snow.xml").read_bytes()
    for path in TSLA_FORM4_PATHS:
        server.route(path, Reply(body=snow, content_type="text/xml"))
    report = edgar(tickers=["TSLA"]).fetch(T("2022-01-24"), T("2022-02-04"))
    assert report.rows["insider"].empty and report.rejects.empty and report.failures.empty
    assert any("2 Form 4 filing(s) report the company as the insider of another issuer" in n for n in report.notes)


def test_edgar_refuses_to_ask_without_a_contact(server: RecordedServer, edgar, tesla: dict) -> None:
    serve_tesla(server, tesla)
    report = edgar(tickers=["TSLA", "AAPL"], user_agent="stockpred/1.0").fetch(T("2022-01-24"), T("2022-02-04"))
    assert list(report.failures.columns) == FAILURE_COLUMNS and server.hits == []
    assert report.failures["kind"].tolist() == ["config", "config"] and not report.failures["retryable"].any()
    assert report.failures["reason"].str.contains("contact email").all() and report.failures["requests"].eq(0).all()
    assert edgar(user_agent="ops@stockpred.example").fetch(T("2022-01-24"), T("2022-01-24"), ["TSLA"]).failures[
        "kind"
    ].tolist() == ["config"]  # an email without a name


def test_edgar_unknown_ticker_is_a_dead_letter(server: RecordedServer, edgar, tesla: dict, sec_dir: Path) -> None:
    serve_tesla(server, tesla)
    provider = edgar(tickers=["TSLA"], cik_map_file=str(sec_dir / "sp500_cik.csv"), insider_transactions=False)
    report = provider.fetch(T("2022-01-24"), T("2022-02-04"))
    [failure] = report.failures.to_dict("records")
    assert (failure["ticker"], failure["kind"], failure["retryable"]) == ("TSLA", "unknown_ticker", False)
    assert "sp500_cik.csv" in failure["reason"] and failure["requests"] == 0 and server.hits == []


def test_edgar_unreadable_cik_map_is_a_config_failure(server: RecordedServer, edgar, tmp_path: Path) -> None:
    bad = tmp_path / "tickers.json"
    bad.write_text('["not", "a", "map"]')
    report = edgar(tickers=["TSLA"], cik_map_file=str(bad)).fetch(T("2022-01-24"), T("2022-02-04"))
    assert report.failures["kind"].tolist() == ["config"] and server.hits == []


def test_edgar_older_pages_only_when_the_window_reaches_them(server: RecordedServer, edgar, tesla: dict) -> None:
    newer, page, name = split_submissions(tesla, before="2020-01-01")
    server.route(TSLA_SUBMISSIONS, Reply.json(json.dumps(newer)))
    server.route(f"/submissions/{name}", Reply.json(json.dumps(page)))
    provider = edgar(tickers=["TSLA"], insider_transactions=False)

    recent_only = provider.fetch(T("2021-03-01"), T("2021-03-31"))
    assert server.hits_for(f"/submissions/{name}") == 0 and len(recent_only.rows["filings"]) > 0
    across = provider.fetch(T("2019-12-02"), T("2020-01-31"))
    assert server.hits_for(f"/submissions/{name}") == 1 and across.requests == 2
    assert server.hits_for("/submissions/CIK0001318605-submissions-001.json") == 0  # 2005-2013: out of reach

    server.route(TSLA_SUBMISSIONS, Reply.json(json.dumps(tesla)))  # the same filings on one page
    whole = provider.fetch(T("2019-12-02"), T("2020-01-31"))
    key = ["accession", "form", "filed_on", "public_at", "date"]
    assert across.rows["filings"].dtypes[key].equals(whole.rows["filings"].dtypes[key])
    assert (
        across.rows["filings"][key]
        .sort_values("accession", ignore_index=True)
        .equals(whole.rows["filings"][key].sort_values("accession", ignore_index=True))
    )
    assert (across.rows["filings"]["filed_on"] < T("2020-01-01")).sum() > 0  # rows from the older page


def test_edgar_paces_ten_requests_a_second(server: RecordedServer, edgar, tesla: dict) -> None:
    serve_tesla(server, tesla)  # 2022-11-01..12-01: six Form 4 filings (documents unrouted: one request each)
    now, slept = [1000.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    provider = edgar(tickers=["TSLA"])
    provider.edgar_client(clock=lambda: now[0], sleep=sleep)
    report = provider.fetch(T("2022-11-01"), T("2022-12-01"))
    assert len(server.hits) == 7 and report.requests == 7 and len(report.rejects) == 6
    assert slept == pytest.approx([0.1] * 6)  # the first goes at once, then one every 100 ms
    assert now[0] - 1000.0 == pytest.approx(0.6)


def test_edgar_rate_is_capped_at_ten_a_second() -> None:
    assert SecEdgarProvider.model_fields["requests_per_minute"].default == 600
    with pytest.raises(ValidationError, match="less than or equal to 600"):
        SecEdgarProvider(user_agent=AGENT, cik_map_file="x.json", requests_per_minute=601)
    now, admitted = [0.0], []
    limiter = RateLimiter(600, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(25):
        limiter.acquire()
        admitted.append(now[0])
    times = pd.Series(admitted).round(9)
    assert max(((times >= t) & (times < t + 1.0)).sum() for t in admitted) == 10


def test_parse_form4_rejects_a_bad_transaction_and_keeps_the_rest(sec_dir: Path) -> None:
    text = (sec_dir / "form4.snow.xml").read_text().replace("<value>73170</value>", "<value>73,170 sh</value>", 1)
    form4 = parse_form4(text)
    assert len(form4.transactions) == 5 and len(form4.bad) == 1
    raw, reason = form4.bad[0]
    assert "73,170 sh" in raw and "could not convert" in reason
    assert (form4.issuer_cik, form4.symbol, form4.period, form4.signed_on) == (
        1640147,
        "SNOW",
        T("2022-12-13"),
        T("2022-12-14"),
    )
    with pytest.raises(ValueError, match="not a Form 4"):
        parse_form4((sec_dir / "AAPL-Xbrl.2013.xml").read_bytes())


def test_files_provider_counts_tesla_filings_as_the_json_does(sec_dir: Path, tesla: dict) -> None:
    report = SecFilesProvider(path=str(sec_dir), tickers=["TSLA"]).fetch(T("2013-01-02"), T("2019-01-31"))
    filings = report.rows["filings"]
    in_2016 = filings[filings["filed_on"].dt.year == 2016]["form"].value_counts().sort_index()
    recent = pd.DataFrame(tesla["filings"]["recent"])
    direct = recent[recent["filingDate"].str.startswith("2016")]["form"].value_counts().sort_index()
    assert in_2016.to_dict() == direct.to_dict() and in_2016["4"] > 0 and in_2016["8-K"] > 0
    filed_2013_2018 = filings[filings["filed_on"].dt.year.between(2013, 2018)]["form"].value_counts()
    assert (filed_2013_2018["4"], filed_2013_2018["8-K"]) == (202, 93)  # as ../shared/data's SOURCE.txt counts
    assert (filings["provider"] == "sec_files").all() and filings["request_id"].nunique() == 1
    assert report.rows["insider"].empty and report.failures.empty and report.rejects.empty
    assert any("Form 4 filing(s)" in n and "missing (not zero)" in n for n in report.notes)  # no Tesla XML recorded
    assert any(n.startswith("AAPL-Xbrl.2013.xml: skipped") for n in report.notes)


def test_files_provider_cannot_date_a_form4_without_its_filing(sec_dir: Path) -> None:
    """Snowflake's Form 4 has no submissions recording: no acceptance time, so its transactions are rejects."""
    provider = SecFilesProvider(path=str(sec_dir))
    assert provider.subjects() == ["TSLA", "SNOW"]
    report = provider.fetch(T("2022-12-12"), T("2022-12-16"), ["SNOW"])
    assert report.rows["insider"].empty and report.failures.empty
    assert len(report.rejects) == 6 and (report.rejects["date"] == T("2022-12-14")).all()  # the signature's session
    assert report.rejects["reason"].str.contains("acceptance time \\(public_at\\) is unknown").all()
    assert json.loads(report.rejects["raw"][0])["shares"] == 200000.0
    assert provider.fetch(T("2022-12-19"), T("2022-12-30"), ["SNOW"]).rejects.empty  # reported once, in its window


def test_files_provider_joins_a_form4_named_by_its_accession(sec_dir: Path, tesla: dict, tmp_path: Path) -> None:
    (tmp_path / "CIK0001640147.json").write_text(json.dumps(snow_submissions(tesla)))
    (tmp_path / f"{SNOW_FORM4['accessionNumber']}.xml").write_bytes((sec_dir / "form4.snow.xml").read_bytes())
    report = SecFilesProvider(path=str(tmp_path), tickers=["SNOW", "TSLA"]).fetch(T("2022-12-12"), T("2022-12-16"))
    insider = report.rows["insider"]
    assert len(insider) == 6 and (insider["date"] == T("2022-12-15")).all() and report.rejects.empty
    assert (insider["accession"] == SNOW_FORM4["accessionNumber"]).all()
    assert report.failures.empty and report.rows["filings"]["ticker"].unique().tolist() == ["SNOW"]
    assert report.notes == [f"no recordings for TSLA in {tmp_path}"]  # missing coverage, not a dead letter


def test_files_provider_without_its_folder_fails_each_ticker(tmp_path: Path) -> None:
    report = SecFilesProvider(path=str(tmp_path / "absent"), tickers=["TSLA"]).fetch(T("2022-01-03"), T("2022-01-31"))
    assert report.failures[["ticker", "kind", "retryable"]].to_dict("records") == [
        {"ticker": "TSLA", "kind": "config", "retryable": False}
    ]
