"""The news providers: NewsAPI against a real local HTTP server serving pages built from real Benzinga headlines, and
the files provider on the real FNSPID and Benzinga recordings."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from provider_recordings import FAST, T
from support.alt_api_bodies import (
    BENZINGA,
    FNSPID,
    SP500_CIK,
    benzinga_headlines,
    newsapi_article,
    newsapi_error,
    newsapi_page,
)
from support.recorded_server import RecordedServer, Reply

from stockpred_core.data.alternative import NEWS_COLUMNS
from stockpred_core.data.schemas import FAILURE_COLUMNS, REJECT_COLUMNS
from stockpred_resources.providers.news import NewsApiProvider, NewsFilesProvider

NEWS_KEY = "NEWSKEY-0123456789abcdef"
EVERYTHING = "/v2/everything"
# Agilent (A) headlines public from the close of Fri 2020-05-15 to the close of Fri 2020-06-05: sessions 05-18..06-05.
SINCE, UNTIL = "2020-05-15 20:00", "2020-06-05 20:00"


@pytest.fixture
def newsapi(server: RecordedServer) -> Iterator:
    made: list[NewsApiProvider] = []

    def make(**config) -> NewsApiProvider:
        config = {"max_attempts": 3, "requests_per_day": None, **FAST, **config}
        made.append(NewsApiProvider(api_key=NEWS_KEY, base_url=server.url, **config))
        return made[-1]

    yield make
    for provider in made:
        provider.close_http()


@pytest.fixture(scope="module")
def agilent(shared_data: Path) -> pd.DataFrame:
    return benzinga_headlines(shared_data, "A", SINCE, UNTIL)


def test_newsapi_maps_real_headlines_to_the_sessions_they_count_for(
    server: RecordedServer, newsapi, agilent: pd.DataFrame, shared_data: Path
) -> None:
    # Two copies of a real headline moved to the edge of the close of Thu 2020-05-21 (20:00 UTC): 15:59 and 16:00 ET.
    edge = agilent.iloc[[0, 0]].assign(
        idx=["edge-1559", "edge-1600"], published=[T("2020-05-21 19:59"), T("2020-05-21 20:00")]
    )
    server.route(EVERYTHING, Reply.json(newsapi_page(pd.concat([agilent, edge]))))
    provider = newsapi(companies_file=str(shared_data / SP500_CIK))
    report = provider.fetch(T("2020-05-18"), T("2020-06-05"), ["A"])
    news = report.rows["news"].set_index("item_id")

    assert report.failures.empty and report.rejects.empty and report.requests == 1 and report.notes == []
    assert list(report.rows["news"].columns) == NEWS_COLUMNS and len(news) == len(agilent) + 2 == 21
    assert (
        (news["ticker"] == "A").all()
        and (news["provider"] == "newsapi").all()
        and news["vendor_sentiment"].isna().all()
    )
    assert news["public_at"].dt.tz is None and (news["source"] == "Benzinga").all()
    row = news.loc["https://www.benzinga.com/news/14"]  # "Agilent Technologies Q2 Adj. EPS $0.71 Beats ..."
    assert row["headline"].startswith("Agilent Technologies Q2 Adj. EPS $0.71") and row["body"] == ""
    assert row["public_at"] == T("2020-05-21 20:06") and row["date"] == T("2020-05-22")  # 16:06 ET: next session
    assert news.loc["https://www.benzinga.com/news/17", "date"] == T("2020-05-18")  # Saturday 10:15 ET: Monday
    assert news.loc["https://www.benzinga.com/news/18", "date"] == T("2020-05-18")  # Friday 16:39 ET: Monday
    assert news.loc["https://www.benzinga.com/news/edge-1559", "date"] == T("2020-05-21")
    assert news.loc["https://www.benzinga.com/news/edge-1600", "date"] == T("2020-05-22")

    [hit] = server.hits
    assert hit.query == {
        "q": '"Agilent Technologies"',  # a one-letter ticker would match every article: the name alone
        "searchIn": "title,description",
        "from": "2020-05-15T20:00:00",
        "to": "2020-06-05T20:00:00",
        "language": "en",
        "sortBy": "publishedAt",
        "pageSize": "100",
        "page": "1",
    }
    assert hit.headers["x-api-key"] == NEWS_KEY and (news["request_id"] == hit.headers["x-request-id"]).all()
    assert provider.query("AAPL") == '"Apple" OR AAPL' and provider.query("BRK.B") == '"Berkshire Hathaway" OR BRK.B'
    assert provider.query("ZZZZ") == "ZZZZ"


def test_newsapi_pages_until_total_results(server: RecordedServer, newsapi, agilent: pd.DataFrame) -> None:
    pages = [agilent.iloc[:7], agilent.iloc[7:14], agilent.iloc[14:]]
    for number, rows in enumerate(pages, start=1):
        server.route(EVERYTHING, Reply.json(newsapi_page(rows, total=len(agilent))), page=str(number))
    report = newsapi(page_size=7).fetch(T("2020-05-18"), T("2020-06-05"), ["A"])

    assert [h.query["page"] for h in server.hits] == ["1", "2", "3"] and {h.query["pageSize"] for h in server.hits} == {
        "7"
    }
    assert report.failures.empty and report.requests == 3
    assert sorted(report.rows["news"]["headline"]) == sorted(agilent["title"])


def test_newsapi_developer_tier_stops_at_100_results_and_keeps_them(
    server: RecordedServer, newsapi, shared_data: Path
) -> None:
    rows = benzinga_headlines(shared_data, "A", "2015-01-01", "2020-06-06").iloc[:100]
    server.route(EVERYTHING, Reply.json(newsapi_page(rows, total=412)), page="1")
    server.route(EVERYTHING, Reply.json(newsapi_error("maximumResultsReached"), status=426), page="2")
    report = newsapi().fetch(T("2015-01-02"), T("2020-06-05"), ["A"])

    assert report.failures.empty and len(report.rows["news"]) == 100 and report.requests == 2
    [note] = report.notes
    assert note.startswith("A: NewsAPI stopped at 100 results (maximumResultsReached") and "Developer accounts" in note


def test_newsapi_429_is_retried_after_retry_after(server: RecordedServer, newsapi, agilent: pd.DataFrame) -> None:
    limited = Reply.json(newsapi_error("rateLimited"), status=429, headers={"Retry-After": "1"})
    server.route(EVERYTHING, limited, Reply.json(newsapi_page(agilent)))
    report = newsapi().fetch(T("2020-05-18"), T("2020-06-05"), ["A"])

    assert report.failures.empty and len(report.rows["news"]) == len(agilent) and report.requests == 2
    assert server.hits_for(EVERYTHING) == 2

    server.reset()
    server.route(EVERYTHING, limited)
    report = newsapi().fetch(T("2020-05-18"), T("2020-06-05"), ["A"])
    [failure] = report.failures.to_dict("records")
    assert failure["kind"] == "transient" and failure["retryable"] and failure["requests"] == 3
    assert "429" in failure["reason"] and report.rows["news"].empty


def test_newsapi_rejected_key_is_a_failure_that_never_shows_the_key(
    server: RecordedServer, newsapi, caplog: pytest.LogCaptureFixture
) -> None:
    server.route(EVERYTHING, Reply.json(newsapi_error("apiKeyInvalid"), status=401))
    with caplog.at_level(logging.DEBUG):
        report = newsapi().fetch(T("2020-05-18"), T("2020-06-05"), ["A", "AAPL"])

    assert list(report.failures.columns) == FAILURE_COLUMNS and list(report.failures["ticker"]) == ["A", "AAPL"]
    failure = report.failures.iloc[0]
    assert failure["kind"] == "auth" and not failure["retryable"] and failure["requests"] == 1
    assert failure["reason"].startswith("A: NewsAPI apiKeyInvalid: Your API key is invalid")
    assert all(hit.headers["x-api-key"] == NEWS_KEY for hit in server.hits) and len(server.hits) == 2
    assert all("apiKey" not in hit.query and NEWS_KEY not in json.dumps(hit.query) for hit in server.hits)
    shown = report.failures.to_json() + json.dumps(report.notes) + caplog.text
    assert NEWS_KEY not in shown


def test_newsapi_misshapen_body_fails_that_ticker_only(
    server: RecordedServer, newsapi, agilent: pd.DataFrame, shared_data: Path
) -> None:
    server.route(EVERYTHING, Reply.json(json.dumps({"status": "ok", "totalResults": 3, "articles": {"a": 1}})))
    server.route(EVERYTHING, Reply.json(newsapi_page(agilent)), q='"Agilent Technologies"')
    server.route(EVERYTHING, Reply.json(newsapi_error("parameterInvalid"), status=400), q='"Microsoft" OR MSFT')
    report = newsapi(companies_file=str(shared_data / SP500_CIK)).fetch(
        T("2020-05-18"), T("2020-06-05"), ["AAPL", "A", "MSFT"]
    )

    failures = report.failures.set_index("ticker")
    assert list(failures.index) == ["AAPL", "MSFT"] and set(failures["kind"]) == {"bad_response"}
    assert "not shaped as documented" in failures.loc["AAPL", "reason"] and "articles" in failures.loc["AAPL", "reason"]
    assert failures.loc["MSFT", "reason"].startswith("MSFT: NewsAPI parameterInvalid: You've included a parameter")
    assert len(report.rows["news"]) == len(agilent) and set(report.rows["news"]["ticker"]) == {"A"}


def test_newsapi_article_without_a_timestamp_is_rejected_not_dropped(
    server: RecordedServer, newsapi, agilent: pd.DataFrame
) -> None:
    articles = [newsapi_article(row) for _, row in agilent.iterrows()]
    articles[3]["publishedAt"] = "yesterday"
    articles[5]["url"] = None  # no URL: a stable id from the title and time
    body = {"status": "ok", "totalResults": len(articles) + 1, "articles": [*articles, "not an article"]}
    server.route(EVERYTHING, Reply.json(json.dumps(body)))
    report = newsapi().fetch(T("2020-05-18"), T("2020-06-05"), ["A"])

    assert report.failures.empty and len(report.rows["news"]) == len(agilent) - 1
    assert list(report.rejects.columns) == REJECT_COLUMNS and len(report.rejects) == 2
    assert list(report.rejects["reason"]) == ["publishedAt 'yesterday' is not a timestamp", "not an object"]
    assert report.rejects.iloc[0]["raw"] == json.dumps(articles[3], ensure_ascii=False)
    assert set(report.rejects["source"]) == {"newsapi /v2/everything page 1"}
    no_url = report.rows["news"].set_index("headline").loc[agilent.iloc[5]["title"]]
    assert no_url["item_id"].startswith("sha1:") and pd.isna(no_url["url"])


# --- files ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def news_files(shared_data: Path) -> NewsFilesProvider:
    return NewsFilesProvider(paths=[str(shared_data / FNSPID), str(shared_data / BENZINGA)])


def test_fnspid_days_with_news_count_for_the_next_session(news_files: NewsFilesProvider, shared_data: Path) -> None:
    report = news_files.fetch(T("2022-06-01"), T("2022-12-30"), ["AAPL", "BRK.B"])
    news = report.rows["news"]
    direct = pd.read_csv(shared_data / FNSPID / "AAPL.csv")
    direct["day"] = pd.to_datetime(direct["Date"], utc=True).dt.tz_localize(None)
    # Days with news from the session before 06-01 (05-31) through 12-29: their items count for 06-01..12-30.
    expected = direct[(direct["News_flag"] == 1) & direct["day"].between(T("2022-05-31"), T("2022-12-29"))]

    assert report.failures.empty and report.requests == 0 and list(news.columns) == NEWS_COLUMNS
    aapl = news[news["ticker"] == "AAPL"].set_index("item_id")
    assert len(aapl) == len(expected) > 100
    friday = aapl.loc["fnspid:AAPL:2022-06-03"]  # Sentiment_gpt 2.4167 on Fri 06-03
    assert friday["date"] == T("2022-06-06") and friday["public_at"] == T("2022-06-03 20:00")  # 16:00 EDT
    assert friday["vendor_sentiment"] == pytest.approx((2.4166666666666665 - 3) / 2)
    half_day = aapl.loc["fnspid:AAPL:2022-11-25"]  # the day after Thanksgiving closes at 13:00 EST
    assert half_day["public_at"] == T("2022-11-25 18:00") and half_day["date"] == T("2022-11-28")
    assert aapl["vendor_sentiment"].between(-1, 1).all() and (aapl["source"] == "fnspid").all()
    brk = news[news["ticker"] == "BRK.B"]  # from BRK-B.csv, spelled as the S&P 500 list does
    assert len(brk) > 50 and brk["item_id"].str.startswith("fnspid:BRK.B:").all()


def test_benzinga_headlines_load_with_their_timestamps(news_files: NewsFilesProvider, shared_data: Path) -> None:
    report = news_files.fetch(T("2020-05-18"), T("2020-06-05"), ["A"])
    news = report.rows["news"].set_index("item_id")
    direct = benzinga_headlines(shared_data, "A", SINCE, UNTIL)

    assert len(news) == len(direct) == 19 and set(news.index) == {f"benzinga:{i}" for i in direct["idx"]}
    first = news.loc["benzinga:0"]
    assert first["headline"] == "Stocks That Hit 52-Week Highs On Friday" and first["source"] == "Benzinga"
    assert first["public_at"] == T("2020-06-05 14:30") and first["date"] == T("2020-06-05")  # 10:30 EDT
    assert news.loc["benzinga:14", "date"] == T("2020-05-22")  # Thu 16:06 EDT: the next session


def test_files_report_broken_source_rows_with_their_reasons(shared_data: Path, tmp_path: Path) -> None:
    fnspid = (shared_data / FNSPID / "AAPL.csv").read_text().splitlines()
    header, good = fnspid[0], [line for line in fnspid[1:] if line.startswith("2022-06-0")]
    broken = [
        "not-a-date,1,1,1,1,1,1,3.0,1.0,0.5",
        "2022-06-13 00:00:00+00:00,1,1,1,1,1,1,high,1.0,0.5",
        "2022-06-14 00:00:00+00:00,1,1,1,1,1,1,3.0,yes,0.5",
        "2022-06-18 00:00:00+00:00,1,1,1,1,1,1,3.0,1.0,0.5",  # a Saturday
    ]
    (tmp_path / "MSFT.csv").write_text("\n".join([header, *good, *broken]) + "\n")
    (tmp_path / "headlines.csv").write_text(
        ",title,date,stock\n"
        "1,Agilent Beats,2020-05-21 16:06:00-04:00,A\n"
        "2,Sterne Agee Provides Color on Aaron's,,\n"
        "3,No ticker here,2020-05-21 10:00:00-04:00,\n"
    )
    (tmp_path / "prices.csv").write_text("Date,Close\n2022-06-01,1.0\n")
    provider = NewsFilesProvider(paths=[str(tmp_path)])
    report = provider.fetch(T("2020-05-18"), T("2022-06-30"), ["MSFT", "A"])

    assert len(report.rows["news"][report.rows["news"]["ticker"] == "MSFT"]) == len(good) == 5
    assert list(report.rows["news"][report.rows["news"]["ticker"] == "A"]["item_id"]) == ["benzinga:1"]
    reasons = dict(zip(report.rejects["raw"], report.rejects["reason"], strict=True))
    assert reasons == {
        broken[0]: "Date 'not-a-date' is not a date",
        broken[1]: "Sentiment_gpt 'high' is not a number",
        broken[2]: "News_flag 'yes' is not a number",
        broken[3]: "2022-06-18 (Saturday) is not an NYSE session",
        "2,Sterne Agee Provides Color on Aaron's,,": "date '' is not a timestamp; no ticker in column 'stock'",
        "3,No ticker here,2020-05-21 10:00:00-04:00,": "no ticker in column 'stock'",
        "Date,Close": "not a known news format (FNSPID: Date,Sentiment_gpt,News_flag; Benzinga: title,date,stock); "
        "columns ['Close', 'Date']",
    }
    assert any(note.startswith("prices.csv: not a known news format") for note in report.notes)
    assert report.failures.empty
    # Undated rejects come with the instance's first fetch only; dated ones with the window that holds them.
    again = provider.fetch(T("2022-06-01"), T("2022-06-30"), ["MSFT"])
    assert set(again.rejects["raw"]) == {broken[1], broken[2], broken[3]}


def test_real_benzinga_file_keeps_its_split_lines_as_rejects(news_files: NewsFilesProvider) -> None:
    rejects = news_files.rejects()
    split = rejects[rejects["raw"].str.startswith("5714,Sterne Agee Provides Color on Aaron's")]
    assert list(split["reason"]) == ["date '' is not a timestamp; no ticker in column 'stock'"]
    assert len(rejects) == 4 and set(rejects["source"]) == {Path(BENZINGA).name}


def test_files_provider_without_recordings_fails_clearly(tmp_path: Path) -> None:
    report = NewsFilesProvider(paths=[str(tmp_path / "missing")]).fetch(T("2022-06-01"), T("2022-06-30"), ["AAPL"])
    [failure] = report.failures.to_dict("records")
    assert failure["kind"] == "bad_response" and failure["reason"].endswith("missing does not exist")


def test_a_headline_stamped_at_local_midnight_counts_for_the_next_session(tmp_path: Path) -> None:
    """Benzinga's 00:00:00 stamps carry the date without the time of day: such an item may have come out after the
    close, so it counts for the next session; a stamp with a time counts for its own session."""
    (tmp_path / "headlines.csv").write_text(
        ",title,date,stock\n"
        "1,Agilent Q2 beat,2020-06-04 00:00:00-04:00,A\n"
        "2,Agilent raises guidance,2020-06-04 10:30:00-04:00,A\n"
    )
    rows = NewsFilesProvider(paths=[str(tmp_path)]).fetch(T("2020-06-01"), T("2020-06-30"), ["A"]).rows["news"]
    dated = rows.set_index("item_id")["date"]
    assert dated["benzinga:1"] == T("2020-06-05") and dated["benzinga:2"] == T("2020-06-04")
