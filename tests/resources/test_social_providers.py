"""The social providers: Twitter's v2 recent search against a real local HTTP server serving pages built from real
stocknet tweets (pagination, rate-limit windows, errors), and the files provider on the real stocknet recording."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from provider_recordings import FAST, T
from support.alt_api_bodies import STOCKNET, rate_headers, stocknet_tweets, twitter_page, twitter_problem
from support.recorded_server import RecordedServer, Reply

from stockpred_core.data.alternative import SOCIAL_COLUMNS
from stockpred_core.data.schemas import REJECT_COLUMNS
from stockpred_resources.providers.social import SocialFilesProvider, TwitterProvider

TOKEN = "AAAAAAAAAAAAAAAAAAAAAtwitterbearer0123456789"
SEARCH = "/2/tweets/search/recent"
# AAPL tweets public from the close of Fri 2014-01-03 to the close of Tue 2014-01-07 (21:00 UTC, EST): 01-06..01-07.
SINCE, UNTIL = "2014-01-03 21:00", "2014-01-07 21:00"
NOW = 1_700_000_000.0


class FakeTime:
    """An epoch clock that only moves when the provider sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = NOW, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def twitter(server: RecordedServer, fake_time: FakeTime) -> Iterator:
    made: list[TwitterProvider] = []

    def make(**config) -> TwitterProvider:
        provider = TwitterProvider(
            bearer_token=TOKEN, base_url=server.url, **{"max_attempts": 3, **FAST, "backoff_max_s": 0.0, **config}
        )
        provider._clock, provider._sleep = lambda: fake_time.now, fake_time.sleep
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close_http()


@pytest.fixture(scope="module")
def aapl(shared_data: Path) -> list[dict]:
    return stocknet_tweets(shared_data, "AAPL", SINCE, UNTIL)


def test_twitter_pages_through_next_tokens_and_maps_real_tweets(
    server: RecordedServer, twitter, aapl: list[dict]
) -> None:
    pages = [twitter_page(aapl[:25], "b26"), twitter_page(aapl[25:50], "c51"), twitter_page(aapl[50:])]
    server.route(SEARCH, Reply.json(pages[0]))
    server.route(SEARCH, Reply.json(pages[1]), next_token="b26")
    server.route(SEARCH, Reply.json(pages[2]), next_token="c51")
    report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL"])
    social = report.rows["social"].set_index("item_id")

    assert report.failures.empty and report.rejects.empty and report.requests == 3 and report.notes == []
    assert list(report.rows["social"].columns) == SOCIAL_COLUMNS and len(social) == len(aapl) == 63
    assert [h.query.get("next_token") for h in server.hits] == [None, "b26", "c51"]
    assert server.hits[0].query == {
        "query": "$AAPL lang:en -is:retweet",
        "start_time": "2014-01-03T21:00:00Z",
        "end_time": "2014-01-07T21:00:00Z",
        "max_results": "100",
        "tweet.fields": "created_at,lang,public_metrics,author_id",
        "expansions": "author_id",
        "user.fields": "public_metrics",
    }
    assert all(hit.headers["authorization"] == f"Bearer {TOKEN}" for hit in server.hits)
    expected = pd.DataFrame(
        {
            "item_id": [t["id_str"] for t in aapl],
            "text": [t["text"] for t in aapl],
            "author_id": [t["user"]["id_str"] for t in aapl],
            "public_at": [t["created"] for t in aapl],
            # one count per author and page (the API expands each user once; stocknet saw counts change)
            "author_followers": [
                next(u for u in json.loads(pages[i // 25])["includes"]["users"] if u["id"] == t["user"]["id_str"])[
                    "public_metrics"
                ]["followers_count"]
                for i, t in enumerate(aapl)
            ],
            "reposts": [t["retweet_count"] for t in aapl],
            "likes": [t["favorite_count"] for t in aapl],
        }
    )
    pd.testing.assert_frame_equal(report.rows["social"][expected.columns], expected, check_dtype=False)
    # Session rule: before Tuesday's 16:00 EST close counts for Tuesday; Friday after the close and the weekend, Monday.
    tuesday = social["public_at"] < T("2014-01-07 21:00")
    monday = social["public_at"] < T("2014-01-06 21:00")
    assert (social.loc[monday, "date"] == T("2014-01-06")).all() and monday.sum() == 32
    assert (social.loc[tuesday & ~monday, "date"] == T("2014-01-07")).all() and (tuesday & ~monday).sum() == 31
    assert (social["ticker"] == "AAPL").all() and (social["provider"] == "twitter").all()


def test_twitter_waits_for_a_spent_window_that_resets_soon(
    server: RecordedServer, twitter, aapl: list[dict], fake_time: FakeTime
) -> None:
    spent = rate_headers(450, 0, NOW + 20)
    server.route(SEARCH, Reply.json(twitter_page(aapl[:30], next_token="p2"), headers=spent))
    server.route(
        SEARCH, Reply.json(twitter_page(aapl[30:]), headers=rate_headers(450, 449, NOW + 920)), next_token="p2"
    )
    provider = twitter()
    report = provider.fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL"])

    assert report.failures.empty and len(report.rows["social"]) == len(aapl) and report.requests == 2
    assert fake_time.slept == [20.0] and report.notes == ["waited 20s for rate-limit windows to reset"]


def test_twitter_stops_at_a_window_that_resets_too_late_and_keeps_what_arrived(
    server: RecordedServer, twitter, aapl: list[dict], fake_time: FakeTime
) -> None:
    server.route(SEARCH, Reply.json(twitter_page(aapl), headers=rate_headers(450, 0, NOW + 600)))
    report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL", "MSFT", "GOOG"])

    assert len(report.rows["social"]) == len(aapl) and set(report.rows["social"]["ticker"]) == {"AAPL"}
    assert len(server.hits) == 1 and fake_time.slept == []  # MSFT and GOOG are refused without a request
    failures = report.failures.set_index("ticker")
    assert list(failures.index) == ["MSFT", "GOOG"] and set(failures["kind"]) == {"quota"}
    assert failures["retryable"].all() and (failures["requests"] == 0).all()
    assert (
        "resets at 2023-11-14 22:23:20 UTC, 600s away, more than max_rate_wait_s=60" in failures.loc["MSFT", "reason"]
    )


def test_twitter_429_waits_for_the_reset_then_succeeds(
    server: RecordedServer, twitter, aapl: list[dict], fake_time: FakeTime
) -> None:
    limited = twitter_problem(429, "Too Many Requests", "Too Many Requests")
    soon = Reply.json(limited, status=429, headers=rate_headers(450, 0, NOW + 5))
    server.route(SEARCH, soon, Reply.json(twitter_page(aapl)))
    report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL"])

    assert report.failures.empty and len(report.rows["social"]) == len(aapl) and report.requests == 2
    assert len(server.hits) == 2 and sum(fake_time.slept) == pytest.approx(5.0)

    server.reset()
    server.route(SEARCH, Reply.json(limited, status=429, headers=rate_headers(450, 0, fake_time.now + 3600)))
    report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL"])
    [failure] = report.failures.to_dict("records")
    assert failure["kind"] == "quota" and failure["requests"] == 1 and len(server.hits) == 1  # not retried
    assert failure["reason"].startswith("AAPL: HTTP 429 Too Many Requests; Twitter rate-limit window of 450 requests")


def test_twitter_rejected_token_is_a_failure_that_never_shows_the_token(
    server: RecordedServer, twitter, caplog: pytest.LogCaptureFixture
) -> None:
    server.route(SEARCH, Reply.json(twitter_problem(401, "Unauthorized", "Unauthorized"), status=401))
    with caplog.at_level(logging.DEBUG):
        report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL"])

    [failure] = report.failures.to_dict("records")
    assert failure["kind"] == "auth" and not failure["retryable"] and failure["requests"] == 1
    assert failure["reason"] == "AAPL: Twitter HTTP 401 Unauthorized: Unauthorized (about:blank)"
    assert server.hits[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in report.failures.to_json() + json.dumps(report.notes) + caplog.text


def test_twitter_misshapen_body_or_bad_request_fails_that_ticker_only(
    server: RecordedServer, twitter, aapl: list[dict]
) -> None:
    server.route(SEARCH, Reply.json(twitter_page(aapl)))
    server.route(SEARCH, Reply.json(json.dumps({"data": {"id": "1"}, "meta": {}})), query="$MSFT lang:en -is:retweet")
    invalid = twitter_problem(
        400,
        "Invalid Request",
        "One or more parameters to your request was invalid.",
        "https://api.twitter.com/2/problems/invalid-request",
    )
    server.route(SEARCH, Reply.json(invalid, status=400), query="$GOOG lang:en -is:retweet")
    report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["MSFT", "AAPL", "GOOG"])

    failures = report.failures.set_index("ticker")
    assert list(failures.index) == ["MSFT", "GOOG"] and set(failures["kind"]) == {"bad_response"}
    assert "recent search page not shaped as documented" in failures.loc["MSFT", "reason"]
    assert failures.loc["GOOG", "reason"] == (
        "GOOG: Twitter HTTP 400 Invalid Request: One or more parameters to your request was invalid. "
        "(https://api.twitter.com/2/problems/invalid-request)"
    )
    assert len(report.rows["social"]) == len(aapl) and set(report.rows["social"]["ticker"]) == {"AAPL"}


def test_twitter_tweet_without_a_time_is_rejected(server: RecordedServer, twitter, aapl: list[dict]) -> None:
    body = json.loads(twitter_page(aapl[:5]))
    body["data"][2]["created_at"] = "soon"
    server.route(SEARCH, Reply.json(json.dumps(body)))
    report = twitter().fetch(T("2014-01-06"), T("2014-01-07"), ["AAPL"])

    assert len(report.rows["social"]) == 4 and list(report.rejects.columns) == REJECT_COLUMNS
    [reject] = report.rejects.to_dict("records")
    assert reject["reason"] == "created_at 'soon' is not a timestamp" and json.loads(reject["raw"]) == body["data"][2]


# --- files ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stocknet(shared_data: Path) -> SocialFilesProvider:
    return SocialFilesProvider(paths=[str(shared_data / STOCKNET)])


def test_stocknet_tweets_load_for_the_sessions_they_count_for(stocknet: SocialFilesProvider, shared_data: Path) -> None:
    report = stocknet.fetch(T("2015-03-02"), T("2015-03-31"), ["AAPL", "FB", "NOPE"])
    social = report.rows["social"]
    # A direct read: tweets from the close of Fri 2015-02-27 (21:00 UTC) to the close of Tue 03-31 (20:00 UTC, EDT).
    counts: dict[str, int] = {}
    with gzip.open(shared_data / STOCKNET, "rt") as handle:
        for line in handle:
            tweet = json.loads(line)
            created = pd.to_datetime(tweet["created_at"], format="%a %b %d %H:%M:%S %z %Y").tz_localize(None)
            if T("2015-02-27 21:00") <= created < T("2015-03-31 20:00"):
                counts[tweet["ticker"]] = counts.get(tweet["ticker"], 0) + 1

    assert report.failures.empty and report.requests == 0 and list(social.columns) == SOCIAL_COLUMNS
    assert social.groupby("ticker").size().to_dict() == {"AAPL": counts["AAPL"], "FB": counts["FB"]}
    assert counts["AAPL"] > 500 and social["date"].between(T("2015-03-02"), T("2015-03-31")).all()
    assert report.notes == [f"no tweets for NOPE in {[str(shared_data / STOCKNET)]}"]
    assert stocknet.table() is stocknet.table()  # read once per instance


def test_stocknet_lines_that_cannot_load_are_rejected_with_reasons(shared_data: Path, tmp_path: Path) -> None:
    with gzip.open(shared_data / STOCKNET, "rt") as handle:
        good = [next(handle) for _ in range(3)]
    real = json.loads(good[0])
    broken = [
        '{"ticker": "AAPL", "id_str": "1", "text": "cut off',
        json.dumps({k: v for k, v in real.items() if k != "created_at"}),
        json.dumps({**real, "created_at": "2014-01-01"}),
        json.dumps({**real, "retweet_count": "many"}),
        json.dumps([real]),
    ]
    path = tmp_path / "tweets.jsonl"
    path.write_text("".join(good) + "\n".join(broken) + "\n")
    report = SocialFilesProvider(paths=[str(tmp_path)]).fetch(T("2014-01-02"), T("2014-01-03"), ["AAPL"])

    assert len(report.rows["social"]) == 3 and report.failures.empty
    rejects = report.rejects.set_index("raw")
    assert rejects.loc[broken[0], "reason"].startswith("line 4: not JSON (")
    assert rejects.loc[broken[1], "reason"] == "line 5: no created_at"
    assert rejects.loc[broken[2], "reason"] == "line 6: created_at '2014-01-01' is not Twitter's time format"
    assert rejects.loc[broken[3], "reason"] == "line 7: retweet_count 'many' is not a number"
    assert rejects.loc[broken[4], "reason"] == "line 8: not a JSON object"
    assert len(rejects) == 5 and set(rejects["source"]) == {"tweets.jsonl"}
