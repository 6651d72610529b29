"""The FRED providers: the series/observations API served by a real local HTTP server with bodies built from the real
FRED CSV downloads (publication lags, "." periods, 400 and 429 answers, the API key kept out of every message), and
the files provider reading those CSVs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from support.alt_sec_fred_bodies import FRED_BAD_KEY, FRED_BAD_SERIES, FRED_TOO_MANY, fred_csv, fred_observations
from support.recorded_server import RecordedServer, Reply

from stockpred_core.data import alternative as alt
from stockpred_core.data import calendar, macro_calendar
from stockpred_core.data.schemas import REJECT_COLUMNS
from stockpred_resources.providers.macro import OBSERVATIONS, FredFilesProvider, FredProvider, observation_window

T = pd.Timestamp
KEY = "abcdef0123456789abcdef0123456789"  # FRED keys are 32 lower-case alphanumerics
FAST = {"max_attempts": 3, "backoff_base_s": 0.001, "backoff_max_s": 0.005, "requests_per_minute": 1e6}


@pytest.fixture(scope="module")
def fred_dir(shared_data: Path) -> Path:
    return shared_data / "macro" / "fred"


@pytest.fixture
def fred(server: RecordedServer) -> Iterator:
    made: list[FredProvider] = []

    def make(**config) -> FredProvider:
        made.append(FredProvider(**{"api_key": KEY, "base_url": server.url, **FAST, **config}))
        return made[-1]

    yield make
    for provider in made:
        provider.close_http()


def serve(server: RecordedServer, fred_dir: Path, series: str, start: T, end: T) -> tuple[str, str]:
    """Route the series' observations for the window the provider must ask for; returns that window."""
    first, last = (f"{d:%Y-%m-%d}" for d in observation_window(series, start, end))
    body = fred_observations(fred_dir / f"{series}.csv", first, last)
    server.route(OBSERVATIONS, Reply.json(body), series_id=series, observation_start=first, observation_end=last)
    return first, last


def test_fred_applies_each_series_publication_lag(server: RecordedServer, fred, fred_dir: Path) -> None:
    start, end = T("2014-02-03"), T("2014-02-28")
    windows = {s: serve(server, fred_dir, s, start, end) for s in ("UNRATE", "CPIAUCSL", "VIXCLS")}
    report = fred(series=["UNRATE", "CPIAUCSL", "VIXCLS"]).fetch(start, end)

    macro = report.rows["macro"]
    assert list(macro.columns) == alt.MACRO_COLUMNS and report.failures.empty and report.rejects.empty
    assert macro["date"].between(start, end).all() and (macro["provider"] == "fred").all()
    by = macro.set_index(["series", "observed_on"])
    # January's rate (out on Friday 7 February) from 08:30 ET on the 15th, a Saturday: Monday the 17th was a holiday
    unrate = by.loc[("UNRATE", T("2014-01-01"))]
    assert (unrate.value, unrate.date, unrate.public_at) == (6.6, T("2014-02-18"), T("2014-02-15 13:30"))
    cpi = by.loc[("CPIAUCSL", T("2013-12-01"))]  # December's CPI from 1 February (January's counts from March)
    assert (cpi.value, cpi.date, cpi.public_at) == (234.719, T("2014-02-03"), T("2014-02-01 05:00"))
    assert macro[macro["series"] != "VIXCLS"].groupby("series").size().to_dict() == {"CPIAUCSL": 1, "UNRATE": 1}
    vix = macro[macro["series"] == "VIXCLS"].set_index("observed_on")
    assert (vix.loc[T("2014-01-31"), "value"], vix.loc[T("2014-01-31"), "date"]) == (18.41, T("2014-02-03"))
    assert (vix.loc[T("2014-02-03"), "value"], vix.loc[T("2014-02-03"), "date"]) == (21.44, T("2014-02-04"))
    assert len(vix) == 19 and vix.index.max() == T("2014-02-27")  # the 28th's close counts from 3 March
    for series, (first, last) in windows.items():
        [hit] = [h for h in server.hits if h.query["series_id"] == series]
        assert hit.query == {
            "series_id": series,
            "api_key": KEY,
            "file_type": "json",
            "observation_start": first,
            "observation_end": last,
            "offset": "0",
        }
    assert windows["UNRATE"] == ("2013-11-03", "2014-02-28") and windows["VIXCLS"] == ("2014-01-24", "2014-02-28")


@pytest.mark.parametrize("series", list(macro_calendar.SERIES))
def test_fred_observation_window_reaches_every_value_published_in_it(series: str) -> None:
    """Whatever the window, the observation just before `observation_start` was public before it began."""
    spec = macro_calendar.SERIES[series]
    step = {"daily": pd.DateOffset(days=1), "monthly": pd.DateOffset(months=1), "quarterly": pd.DateOffset(months=3)}
    for start in calendar.sessions("2014-01-02", "2017-01-02")[::7]:
        first, _ = observation_window(series, start, start)
        period = pd.Series([first]).dt.to_period({"daily": "D", "monthly": "M", "quarterly": "Q"}[spec.frequency])
        before = period.dt.to_timestamp() - step[spec.frequency]
        assert alt.session_for(macro_calendar.published_at(series, before))[0] < start


def test_fred_skips_and_counts_missing_values(server: RecordedServer, fred, fred_dir: Path) -> None:
    start, end = T("2014-01-02"), T("2014-01-10")
    serve(server, fred_dir, "VIXCLS", start, end)  # 2014-01-01 is "." in FRED's file
    assert fred_csv(fred_dir / "VIXCLS.csv").set_index("date").loc["2014-01-01", "value"] == "."
    report = fred(series=["VIXCLS"]).fetch(start, end)
    vix = report.rows["macro"]
    assert T("2014-01-01") not in set(vix["observed_on"]) and vix["value"].notna().all()
    assert report.rejects.empty and report.failures.empty
    assert report.notes == ["VIXCLS: 1 observation(s) without a value skipped for 2014-01-02..2014-01-10"]


def test_fred_value_that_is_not_a_number_is_a_reject(server: RecordedServer, fred, fred_dir: Path) -> None:
    start, end = T("2014-01-06"), T("2014-01-10")
    first, last = (f"{d:%Y-%m-%d}" for d in observation_window("VIXCLS", start, end))
    body = json.loads(fred_observations(fred_dir / "VIXCLS.csv", first, last))
    target = next(o for o in body["observations"] if o["date"] == "2014-01-06")
    target["value"] = "13.55*"
    server.route(OBSERVATIONS, Reply.json(json.dumps(body)))
    report = fred(series=["VIXCLS"]).fetch(start, end)
    [reject] = report.rejects.to_dict("records")
    assert list(report.rejects.columns) == REJECT_COLUMNS
    assert (reject["ticker"], reject["date"], reject["reason"]) == (
        "VIXCLS",
        T("2014-01-07"),
        "value '13.55*' is not a number",
    )
    assert json.loads(reject["raw"])["date"] == "2014-01-06"
    assert T("2014-01-06") not in set(report.rows["macro"]["observed_on"]) and len(report.rows["macro"]) == 4


@pytest.mark.parametrize(
    ("body", "kind"), [(FRED_BAD_SERIES, "unknown_ticker"), (FRED_BAD_KEY, "auth")], ids=["bad_series", "bad_key"]
)
def test_fred_400_is_a_failure_without_the_key(
    server: RecordedServer, fred, fred_dir: Path, caplog: pytest.LogCaptureFixture, body: str, kind: str
) -> None:
    serve(server, fred_dir, "UNRATE", T("2014-02-03"), T("2014-02-28"))
    server.route(OBSERVATIONS, Reply.json(body, status=400), series_id="DFF")  # FRED refuses it (series or key)
    with caplog.at_level(logging.DEBUG):
        report = fred(series=["DFF", "UNRATE"]).fetch(T("2014-02-03"), T("2014-02-28"))
    [failure] = report.failures.to_dict("records")
    assert (failure["ticker"], failure["kind"], failure["retryable"], failure["requests"]) == (
        "DFF",
        kind,
        False,
        1,
    )
    assert json.loads(body)["error_message"] in failure["reason"] and "HTTP 400" in failure["reason"]
    assert len(report.rows["macro"]) == 1  # the other series still loads
    assert all(h.query["api_key"] == KEY for h in server.hits)  # the key was in play on every request
    shown = report.failures.to_json() + report.rejects.to_json() + json.dumps(report.notes) + caplog.text
    assert KEY not in shown and "api_key=" in caplog.text  # httpx logged the URLs, masked


def test_fred_key_quoted_by_the_server_is_masked(server: RecordedServer, fred, caplog) -> None:
    quoted = json.dumps({"error_code": 400, "error_message": f"Bad Request.  The value {KEY} for api_key is invalid."})
    server.route(OBSERVATIONS, Reply.json(quoted, status=400))
    with caplog.at_level(logging.DEBUG):
        report = fred(series=["UNRATE"]).fetch(T("2014-02-03"), T("2014-02-28"))
    assert report.failures["kind"].tolist() == ["auth"] and "***" in report.failures["reason"][0]
    assert KEY not in report.failures.to_json() + caplog.text


def test_fred_429_is_retried(server: RecordedServer, fred, fred_dir: Path) -> None:
    start, end = T("2014-02-03"), T("2014-02-28")
    first, last = (f"{d:%Y-%m-%d}" for d in observation_window("UNRATE", start, end))
    ok = Reply.json(fred_observations(fred_dir / "UNRATE.csv", first, last))
    server.route(OBSERVATIONS, Reply.json(FRED_TOO_MANY, status=429), ok)
    report = fred(series=["UNRATE"]).fetch(start, end)
    assert report.failures.empty and report.requests == 2 and len(report.rows["macro"]) == 1

    server.reset()
    server.route(OBSERVATIONS, Reply.json(FRED_TOO_MANY, status=429, headers={"Retry-After": "0"}))
    report = fred(series=["UNRATE"]).fetch(start, end)
    [failure] = report.failures.to_dict("records")
    assert (failure["kind"], failure["retryable"], failure["requests"]) == ("transient", True, 3)
    assert "429" in failure["reason"] and len(server.hits) == 3


def test_fred_follows_pages(server: RecordedServer, fred, fred_dir: Path) -> None:
    start, end = T("2014-03-03"), T("2014-03-31")
    first, last = (f"{d:%Y-%m-%d}" for d in observation_window("VIXCLS", start, end))
    path = fred_dir / "VIXCLS.csv"
    server.route(OBSERVATIONS, Reply.json(fred_observations(path, first, last, limit=20)), offset="0")
    server.route(OBSERVATIONS, Reply.json(fred_observations(path, first, last, offset=20, limit=20)), offset="20")
    report = fred(series=["VIXCLS"]).fetch(start, end)
    assert report.requests == 2 and [h.query["offset"] for h in server.hits] == ["0", "20"]
    assert len(report.rows["macro"]) == 21 and report.rows["macro"]["date"].is_unique


def test_fred_without_a_key_or_a_lag_asks_nothing(server: RecordedServer, fred) -> None:
    report = fred(api_key=" ", series=["UNRATE"]).fetch(T("2014-02-03"), T("2014-02-28"))
    assert report.failures["kind"].tolist() == ["auth"]
    report = fred(series=["T10Y2Y"]).fetch(T("2014-02-03"), T("2014-02-28"))
    assert (
        report.failures["kind"].tolist() == ["unknown_ticker"] and "no publication lag" in report.failures["reason"][0]
    )
    assert server.hits == []


def test_files_provider_loads_every_fred_csv(fred_dir: Path) -> None:
    series = sorted(p.stem for p in fred_dir.glob("*.csv"))
    assert len(series) == 10
    provider = FredFilesProvider(path=str(fred_dir), series=series)
    report = provider.fetch(T("2013-01-02"), T("2020-09-30"))
    assert report.failures.empty and report.rejects.empty
    macro = report.rows["macro"]
    counts = macro.groupby("series").size()
    assert set(counts.index) == set(series)
    for name in series:
        text = fred_csv(fred_dir / f"{name}.csv")
        public = macro_calendar.published_at(name, pd.to_datetime(text["date"]))
        counted = alt.session_for(public).between(T("2013-01-02"), T("2020-09-30")).to_numpy()
        values = pd.to_numeric(text["value"], errors="coerce")
        valid = values.notna() & ~((name in provider.zero_means_missing) & (values == 0))
        assert counts[name] == (counted & valid.to_numpy()).sum(), name
    dgs10 = macro[macro["series"] == "DGS10"].set_index("observed_on")["value"]
    assert (dgs10[T("2014-01-02")], dgs10[T("2020-09-29")]) == (3.0, 0.66)  # M/D/YYYY dates, "10yrTreasYeild"
    assert dgs10.min() > 0 and T("2014-01-20") not in dgs10.index  # its 0 on a bond-market holiday is missing
    gdp = macro[macro["series"] == "GDP"].set_index("observed_on")
    assert gdp.loc[T("2019-10-01"), "date"] == T("2020-02-03")  # Q4 published from 1 February, a Saturday
    assert any(n.startswith("DGS10: ") for n in report.notes) and any(n.startswith("TEDRATE: ") for n in report.notes)


def test_files_provider_counts_dots_per_window(fred_dir: Path) -> None:
    provider = FredFilesProvider(path=str(fred_dir), series=["TEDRATE", "VIXCLS"])
    report = provider.fetch(T("2013-01-02"), T("2020-12-31"))
    parsed = {s: provider.observations(s)[0] for s in ("TEDRATE", "VIXCLS")}
    assert {s: len(p.missing) for s, p in parsed.items()} == {"TEDRATE": 473, "VIXCLS": 285}  # every "." of the files
    in_window = {
        s: int(alt.session_for(p.missing).between(T("2013-01-02"), T("2020-12-31")).sum()) for s, p in parsed.items()
    }
    assert sorted(report.notes) == [
        f"{s}: {n} observation(s) without a value skipped for 2013-01-02..2020-12-31"
        for s, n in sorted(in_window.items())
    ]


def test_files_provider_missing_file_and_bad_rows(fred_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "UNRATE.csv").write_text(
        "DATE,UNRATE\n2014-01-01,6.6\n2014-02-01,six\n2014-13-01,6.7\n2014-04-01,6.2,extra\n\n2014-05-01,.\n"
    )
    provider = FredFilesProvider(path=str(tmp_path), series=["UNRATE", "CPIAUCSL"])
    report = provider.fetch(T("2013-01-02"), T("2014-12-31"))
    [failure] = report.failures.to_dict("records")
    assert (failure["ticker"], failure["kind"], failure["retryable"]) == ("CPIAUCSL", "unknown_ticker", False)
    assert report.rows["macro"][["observed_on", "value"]].to_dict("records") == [
        {"observed_on": T("2014-01-01"), "value": 6.6}
    ]
    assert sorted(zip(report.rejects["raw"], report.rejects["reason"], strict=True)) == [
        ("2014-02-01,six", "value 'six' is not a number"),
        ("2014-04-01,6.2,extra", "expected 2 fields (date, value)"),
        ("2014-13-01,6.7", "date '2014-13-01' is not a date"),
    ]
    assert report.rejects.loc[report.rejects["raw"] == "2014-02-01,six", "date"].item() == T("2014-03-17")
    assert report.notes == ["UNRATE: 1 observation(s) without a value skipped for 2013-01-02..2014-12-31"]
    assert (report.rejects["source"] == "UNRATE.csv").all() and (report.rejects["provider"] == "fred_files").all()
