"""API-shaped bodies built from the real recordings in ../shared/data (not tests themselves): NewsAPI /v2/everything
pages from real Benzinga headlines, Twitter v2 recent-search pages from real stocknet tweets, and the documented
error bodies of both APIs.

The recordings lack what the APIs add (a headline's URL, a tweet's reply count): those are derived, never invented
content; every title, text, timestamp, id and count comes from the recordings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd

BENZINGA = "alternative/news/analyst_ratings_processed_subset.csv"
FNSPID = "alternative/news/fnspid_daily_sentiment"
STOCKNET = "alternative/tweets/stocknet_tweets_2014_2015.jsonl.gz"
SP500_CIK = "alternative/sec/sp500_cik.csv"

# NewsAPI's documented error bodies (https://newsapi.org/docs/errors), message texts as the API sends them.
NEWSAPI_MESSAGES = {
    "apiKeyInvalid": "Your API key is invalid or incorrect. Check your key, or go to https://newsapi.org to create a "
    "free API key.",
    "rateLimited": "You have made too many requests recently. Developer accounts are limited to 100 requests over a 24 "
    "hour period (50 requests available every 12 hours). Please upgrade to a paid plan if you need more requests.",
    "maximumResultsReached": "You have requested too many results. Developer accounts are limited to a max of 100 "
    "results. You are trying to request results 100 to 200. Please upgrade to a paid plan if you need more results.",
    "parameterInvalid": "You've included a parameter in your request which is currently not supported. Check the "
    "message property for more details.",
}


def benzinga_headlines(shared_data: Path, ticker: str, since_utc: str, until_utc: str) -> pd.DataFrame:
    """The ticker's real headlines public in [since, until) (UTC), newest first, with `published` in UTC."""
    frame = pd.read_csv(shared_data / BENZINGA, dtype=str, keep_default_na=False)
    frame = frame.rename(columns={frame.columns[0]: "idx"})
    frame = frame[frame["stock"] == ticker].copy()
    frame["published"] = pd.to_datetime(frame["date"], utc=True, errors="coerce").dt.tz_localize(None)
    window = frame["published"].between(pd.Timestamp(since_utc), pd.Timestamp(until_utc), inclusive="left")
    return frame[window].sort_values("published", ascending=False).reset_index(drop=True)


def newsapi_article(row: pd.Series) -> dict:
    """One NewsAPI article from a Benzinga headline row (its URL derived from the row's idx)."""
    return {
        "source": {"id": None, "name": "Benzinga"},
        "author": None,
        "title": row["title"],
        "description": None,
        "url": f"https://www.benzinga.com/news/{row['idx']}",
        "urlToImage": None,
        "publishedAt": row["published"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "content": None,
    }


def newsapi_page(rows: pd.DataFrame, total: int | None = None) -> str:
    articles = [newsapi_article(row) for _, row in rows.iterrows()]
    return json.dumps({"status": "ok", "totalResults": len(articles) if total is None else total, "articles": articles})


def newsapi_error(code: str, message: str | None = None) -> str:
    return json.dumps({"status": "error", "code": code, "message": message or NEWSAPI_MESSAGES[code]})


def stocknet_tweets(shared_data: Path, ticker: str, since_utc: str, until_utc: str) -> list[dict]:
    """The ticker's real tweets created in [since, until) (UTC), newest first, as recorded (v1.1 fields)."""
    since, until = pd.Timestamp(since_utc, tz="UTC"), pd.Timestamp(until_utc, tz="UTC")
    found = []
    with gzip.open(shared_data / STOCKNET, "rt", encoding="utf-8") as handle:
        for line in handle:
            tweet = json.loads(line)
            if tweet["ticker"] == ticker:
                created = pd.to_datetime(tweet["created_at"], format="%a %b %d %H:%M:%S %z %Y")
                if since <= created < until:
                    found.append({**tweet, "created": created.tz_convert("UTC").tz_localize(None)})
    return sorted(found, key=lambda t: t["created"], reverse=True)


def twitter_page(tweets: list[dict], next_token: str | None = None) -> str:
    """A v2 recent-search page (tweet.fields created_at,lang,public_metrics,author_id; users expanded)."""
    data = [
        {
            "id": t["id_str"],
            "text": t["text"],
            "created_at": t["created"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "author_id": t["user"]["id_str"],
            "lang": t["lang"],
            "edit_history_tweet_ids": [t["id_str"]],
            "public_metrics": {
                "retweet_count": t["retweet_count"],
                "reply_count": 0,
                "like_count": t["favorite_count"],
                "quote_count": 0,
            },
        }
        for t in tweets
    ]
    users = {
        t["user"]["id_str"]: {
            "id": t["user"]["id_str"],
            "name": f"user {t['user']['id_str']}",
            "username": f"u{t['user']['id_str']}",
            "public_metrics": {"followers_count": t["user"]["followers_count"], "following_count": 0},
        }
        for t in tweets
    }
    meta = {"result_count": len(data)}
    if data:
        meta |= {"newest_id": data[0]["id"], "oldest_id": data[-1]["id"]}
    if next_token:
        meta["next_token"] = next_token
    body = {"data": data, "includes": {"users": list(users.values())}, "meta": meta} if data else {"meta": meta}
    return json.dumps(body)


def twitter_problem(status: int, title: str, detail: str, kind: str = "about:blank") -> str:
    """A v2 problem body, as the API answers 4xx (e.g. 401: Unauthorized/Unauthorized/about:blank)."""
    return json.dumps({"title": title, "type": kind, "status": status, "detail": detail})


def rate_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-rate-limit-limit": str(limit),
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": str(int(reset)),
    }
