"""The alternative features on hand-built items whose values are checked by hand, and one realistic run on the real
stocknet tweets and FNSPID news scores."""

import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest

from stockpred_core.data import calendar
from stockpred_core.data.alternative import session_for
from stockpred_core.data.macro_calendar import published_at
from stockpred_core.features.alternative import ALT_LOOKBACK_SESSIONS, AltItems, compute_alt_features
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION, FAMILIES
from stockpred_core.models.sentiment import SentimentModel, build_pipeline, load_phrasebank

DAYS = calendar.sessions("2015-03-02", "2015-04-30")


def et(moment: str) -> pd.Timestamp:
    """A New York wall-clock moment as tz-naive UTC (the raw tables' convention)."""
    return pd.Timestamp(moment, tz="America/New_York").tz_convert("UTC").tz_localize(None)


def stamped(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.assign(date=session_for(frame["public_at"]).to_numpy())


def text_items(items: list[tuple[str, pd.Timestamp, float]]) -> pd.DataFrame:
    return stamped(
        [{"ticker": t, "public_at": at, "item_id": str(i), "sentiment": s} for i, (t, at, s) in enumerate(items)]
    )


def grid(tickers=("AAA", "BBB", "CCC"), days=DAYS) -> pd.DataFrame:
    return pd.DataFrame([(d, t) for d in days for t in tickers], columns=["date", "ticker"])


def row(table: pd.DataFrame, day: str, ticker: str) -> pd.Series:
    hit = table[(table["date"] == pd.Timestamp(day)) & (table["ticker"] == ticker)]
    assert len(hit) == 1
    return hit.iloc[0]


NEWS = text_items(
    [
        ("AAA", et("2015-03-10 10:00"), 0.1),
        ("AAA", et("2015-03-10 15:59"), 0.5),  # before the close: counts for the 10th
        ("AAA", et("2015-03-10 16:00"), -0.5),  # at the close: counts for the 11th
        ("AAA", et("2015-03-14 12:00"), 0.2),  # a Saturday: counts for Monday the 16th
        ("BBB", et("2015-03-10 09:00"), np.nan),  # a text without sentiment still counts as a message
        ("ZZZ", et("2015-03-10 09:00"), 0.9),  # not in the grid: ignored
    ]
)


@pytest.fixture(scope="module")
def news_table() -> pd.DataFrame:
    return compute_alt_features(grid(), AltItems(news=NEWS))


def test_output_shape_order_and_version(news_table):
    g = grid()
    assert list(news_table.columns) == ["date", "ticker", *ALT_COLUMNS, "alt_feature_set_version"]
    assert news_table[["date", "ticker"]].equals(g)
    assert (news_table["alt_feature_set_version"] == ALT_FEATURE_SET_VERSION).all()
    shuffled = g.sample(frac=1, random_state=1)
    again = compute_alt_features(shuffled, AltItems(news=NEWS))
    assert again[["date", "ticker"]].equals(shuffled.reset_index(drop=True))
    pd.testing.assert_frame_equal(
        again.sort_values(["date", "ticker"]).reset_index(drop=True), news_table, check_exact=True
    )


def test_news_values_by_hand(news_table):
    assert session_for(pd.Series([et("2015-03-10 15:59"), et("2015-03-10 16:00")])).tolist() == [
        pd.Timestamp("2015-03-10"),
        pd.Timestamp("2015-03-11"),
    ]
    before = row(news_table, "2015-03-09", "AAA")
    assert (
        before["news_covered"] == 0
        and before[[c for c in ALT_COLUMNS if c.startswith("news_")]].drop("news_covered").isna().all()
    )

    tenth = row(news_table, "2015-03-10", "AAA")
    assert tenth["news_covered"] == 1
    assert tenth["news_count"] == pytest.approx(math.log1p(2))
    assert tenth["news_sentiment"] == pytest.approx(0.3)
    assert tenth["news_sentiment_std"] == pytest.approx(np.std([0.1, 0.5], ddof=1))
    assert tenth["news_sentiment_5"] == pytest.approx(0.3)
    assert tenth["news_volume_surprise"] == pytest.approx(math.log(3 / 1))  # nothing in the 21 sessions before

    eleventh = row(news_table, "2015-03-11", "AAA")
    assert eleventh["news_count"] == pytest.approx(math.log1p(1))
    assert eleventh["news_sentiment"] == pytest.approx(-0.5)
    assert np.isnan(eleventh["news_sentiment_std"])  # under 2 items
    assert eleventh["news_sentiment_5"] == pytest.approx((0.1 + 0.5 - 0.5) / 3)
    assert eleventh["news_volume_surprise"] == pytest.approx(math.log(2 / (1 + 2 / 21)))

    quiet = row(news_table, "2015-03-12", "AAA")  # covered, but no item that day
    assert quiet["news_covered"] == 1 and quiet["news_count"] == 0
    assert np.isnan(quiet["news_sentiment"]) and np.isnan(quiet["news_sentiment_std"])
    assert quiet["news_volume_surprise"] == pytest.approx(math.log(1 / (1 + 3 / 21)))
    assert quiet["news_sentiment_5"] == pytest.approx(0.1 / 3)

    monday = row(news_table, "2015-03-16", "AAA")  # the Saturday item
    assert monday["news_count"] == pytest.approx(math.log1p(1)) and monday["news_sentiment"] == pytest.approx(0.2)
    assert monday["news_sentiment_5"] == pytest.approx((0.1 + 0.5 - 0.5 + 0.2) / 4)  # 10, 11, 12, 13, 16 March
    assert row(news_table, "2015-03-17", "AAA")["news_sentiment_5"] == pytest.approx((-0.5 + 0.2) / 2)
    assert row(news_table, "2015-03-13", "AAA")["news_count"] == 0


def test_coverage_lasts_21_sessions_and_unscored_items_count(news_table):
    last_covered = calendar.add_sessions("2015-03-16", 20)
    assert row(news_table, last_covered, "AAA")["news_covered"] == 1
    gone = row(news_table, calendar.add_sessions("2015-03-16", 21), "AAA")
    assert gone["news_covered"] == 0 and np.isnan(gone["news_count"]) and np.isnan(gone["news_volume_surprise"])

    bbb = row(news_table, "2015-03-10", "BBB")
    assert bbb["news_covered"] == 1 and bbb["news_count"] == pytest.approx(math.log1p(1))
    assert np.isnan(bbb["news_sentiment"]) and np.isnan(bbb["news_sentiment_5"])


def test_a_ticker_never_covered_and_a_family_without_source_are_nan_with_mask_zero(news_table):
    ccc = news_table[news_table["ticker"] == "CCC"]
    assert (ccc["news_covered"] == 0).all() and ccc[[c for c in ALT_COLUMNS if c.startswith("news_")]].drop(
        columns="news_covered"
    ).isna().all().all()
    for family in ("social", "filings", "macro"):
        columns = [c for c in ALT_COLUMNS if c.startswith(f"{family}_")]
        assert (news_table[f"{family}_covered"] == 0).all()
        assert news_table[columns].drop(columns=f"{family}_covered").isna().all().all()
    assert "ZZZ" not in set(news_table["ticker"])


def test_social_is_computed_like_news():
    social = NEWS.drop(columns="item_id").assign(item_id=lambda f: "s" + f.index.astype(str))
    table = compute_alt_features(grid(), AltItems(news=NEWS, social=social))
    for name in [c for c in ALT_COLUMNS if c.startswith("news_")]:
        np.testing.assert_array_equal(table[name], table[name.replace("news_", "social_", 1)])


FILINGS = stamped(
    [
        {"ticker": "AAA", "form": "10-K", "public_at": et("2015-02-20 16:00"), "accession": "a1"},  # -> 23 Feb
        {"ticker": "AAA", "form": "8-K", "public_at": et("2015-03-05 09:00"), "accession": "a2"},
        {"ticker": "AAA", "form": "8-K/A", "public_at": et("2015-03-12 09:00"), "accession": "a3"},
        {"ticker": "AAA", "form": "10-K/A", "public_at": et("2015-03-19 09:00"), "accession": "a4"},
        {"ticker": "AAA", "form": "4", "public_at": et("2015-03-09 18:00"), "accession": "a5"},
        {"ticker": "BBB", "form": "8-K", "public_at": et("2014-02-05 09:00"), "accession": "b1"},  # over a year back
    ]
)
INSIDER = stamped(
    [
        {"ticker": "AAA", "code": "P", "shares": 100.0, "public_at": et("2015-01-05 17:00")},  # -> 6 Jan
        {"ticker": "AAA", "code": "S", "shares": 300.0, "public_at": et("2015-03-09 18:00")},  # -> 10 Mar
        {"ticker": "AAA", "code": "A", "shares": 5000.0, "public_at": et("2015-03-09 18:00")},  # an award: ignored
        {"ticker": "AAA", "code": "S", "shares": np.nan, "public_at": et("2015-03-09 18:00")},  # no shares: ignored
    ]
)


def test_filings_values_by_hand():
    table = compute_alt_features(grid(), AltItems(filings=FILINGS, insider=INSIDER))
    first = row(table, "2015-03-02", "AAA")
    assert first["filings_covered"] == 1
    assert first["filings_days_since_10k"] == len(calendar.sessions("2015-02-24", "2015-03-02"))  # since 23 Feb
    assert np.isnan(first["filings_days_since_8k"]) and np.isnan(first["filings_days_since_10q"])
    assert first["filings_insider_net_buy_90"] == 1.0  # the purchase of 6 January alone

    assert row(table, "2015-03-05", "AAA")["filings_days_since_8k"] == 0
    assert row(table, "2015-03-10", "AAA")["filings_days_since_8k"] == 3  # 6, 9, 10 March
    assert row(table, "2015-03-12", "AAA")["filings_days_since_8k"] == 5  # the 8-K/A does not reset it
    assert row(table, "2015-03-20", "AAA")["filings_days_since_10k"] == len(
        calendar.sessions("2015-02-24", "2015-03-20")
    )
    assert row(table, "2015-03-10", "AAA")["filings_insider_net_buy_90"] == pytest.approx((100 - 300) / 400)
    # 6 January leaves the 90-day window on 6 April (90 days after it)
    assert row(table, "2015-04-02", "AAA")["filings_insider_net_buy_90"] == pytest.approx(-0.5)
    assert row(table, "2015-04-06", "AAA")["filings_insider_net_buy_90"] == -1.0

    bbb = table[table["ticker"] == "BBB"]  # its only filing is more than 365 days old
    assert (bbb["filings_covered"] == 0).all() and bbb["filings_days_since_8k"].isna().all()
    without_insider = compute_alt_features(grid(), AltItems(filings=FILINGS))
    assert without_insider["filings_insider_net_buy_90"].isna().all()
    assert without_insider["filings_covered"].equals(table["filings_covered"])


def macro_rows(series: str, values: dict[str, float]) -> pd.DataFrame:
    observed = pd.Series(pd.to_datetime(list(values)))
    public = published_at(series, observed)
    return pd.DataFrame(
        {"series": series, "observed_on": observed, "value": list(values.values()), "public_at": public}
    ).assign(date=lambda f: session_for(f["public_at"]).to_numpy())


def monthly(start: str, end: str, first: float, step: float) -> dict[str, float]:
    months = pd.date_range(start, end, freq="MS")
    return {f"{m:%Y-%m-%d}": first + step * i for i, m in enumerate(months)}


CPI = monthly("2013-12-01", "2015-03-01", 230.0, 0.5)
UNRATE = monthly("2014-06-01", "2015-03-01", 6.1, -0.1)
DAILY = {f"{d:%Y-%m-%d}": 10.0 + i for i, d in enumerate(pd.bdate_range("2014-12-01", "2015-04-30"))}


def macro_items(ted_until: str = "2015-04-30") -> pd.DataFrame:
    ted = {day: value for day, value in DAILY.items() if day <= ted_until}
    return pd.concat(
        [
            macro_rows("CPIAUCSL", CPI),
            macro_rows("UNRATE", UNRATE),
            macro_rows("VIXCLS", DAILY),
            macro_rows("DGS10", {k: v / 10 for k, v in DAILY.items()}),
            macro_rows("TEDRATE", ted),
        ],
        ignore_index=True,
    )


def test_macro_lags_and_values_by_hand():
    table = compute_alt_features(grid(), AltItems(macro=macro_items()))
    # January's CPI counts from 1 March (a Sunday): not on Friday 27 February, from Monday 2 March
    assert session_for(published_at("CPIAUCSL", pd.Series([pd.Timestamp("2015-01-01")])))[0] == pd.Timestamp(
        "2015-03-02"
    )
    days = calendar.sessions("2015-02-02", "2015-03-31")
    early = compute_alt_features(grid(("AAA",), days), AltItems(macro=macro_items()))
    friday, monday = row(early, "2015-02-27", "AAA"), row(early, "2015-03-02", "AAA")
    assert friday["macro_cpi_yoy"] == pytest.approx(CPI["2014-12-01"] / CPI["2013-12-01"] - 1)
    assert monday["macro_cpi_yoy"] == pytest.approx(CPI["2015-01-01"] / CPI["2014-01-01"] - 1)

    day = row(table, "2015-03-10", "BBB")
    # the daily value of 9 March is published at 00:00 ET on the 10th, so it is the latest known on the 10th
    assert day["macro_vix"] == DAILY["2015-03-09"]
    assert day["macro_vix_change_5"] == pytest.approx(DAILY["2015-03-09"] - DAILY["2015-03-02"])
    assert day["macro_dgs10"] == pytest.approx(DAILY["2015-03-09"] / 10)
    # 20 sessions before 10 March is 9 February, when the value of Friday 6 February was the latest
    assert day["macro_dgs10_change_20"] == pytest.approx((DAILY["2015-03-09"] - DAILY["2015-02-06"]) / 10)
    assert day["macro_ted"] == DAILY["2015-03-09"]
    # February's unemployment (out on 6 March) counts from the 15th: on the 10th January's is the latest, vs October's
    assert day["macro_unrate_change"] == pytest.approx(UNRATE["2015-01-01"] - UNRATE["2014-10-01"])
    assert day["macro_covered"] == 1.0
    same_day = table[table["date"] == pd.Timestamp("2015-03-10")]
    assert (same_day[[c for c in ALT_COLUMNS if c.startswith("macro_")]].nunique() == 1).all()  # market-wide


def test_macro_revision_counts_from_its_own_session_and_stale_series_become_unknown():
    revision = macro_rows("CPIAUCSL", {"2015-01-01": 300.0}).assign(
        public_at=et("2015-03-04 12:00"), date=pd.Timestamp("2015-03-04")
    )
    items = pd.concat([macro_items(ted_until="2015-03-13"), revision], ignore_index=True)
    table = compute_alt_features(grid(("AAA",)), AltItems(macro=items))
    assert row(table, "2015-03-03", "AAA")["macro_cpi_yoy"] == pytest.approx(CPI["2015-01-01"] / CPI["2014-01-01"] - 1)
    assert row(table, "2015-03-04", "AAA")["macro_cpi_yoy"] == pytest.approx(300.0 / CPI["2014-01-01"] - 1)
    # TEDRATE's last value (13 March, known on the 16th) is stale after 14 calendar days
    assert row(table, "2015-03-27", "AAA")["macro_ted"] == DAILY["2015-03-13"]
    late = row(table, "2015-03-30", "AAA")
    assert np.isnan(late["macro_ted"]) and late["macro_covered"] == pytest.approx(0.8)
    assert late["macro_vix"] == DAILY["2015-03-27"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="not sessions"):
        compute_alt_features(pd.DataFrame({"date": [pd.Timestamp("2015-03-07")], "ticker": ["AAA"]}), AltItems())
    with pytest.raises(ValueError, match="repeats"):
        compute_alt_features(pd.concat([grid(), grid().head(1)]), AltItems())
    with pytest.raises(ValueError, match="sentiment"):
        compute_alt_features(grid(), AltItems(news=NEWS.drop(columns="sentiment")))
    with pytest.raises(ValueError, match="without a date"):
        compute_alt_features(grid(), AltItems(filings=FILINGS.assign(date=pd.NaT)))
    empty = compute_alt_features(grid().head(0), AltItems(news=NEWS))
    assert len(empty) == 0 and list(empty.columns) == ["date", "ticker", *ALT_COLUMNS, "alt_feature_set_version"]


def test_a_window_gives_the_rows_a_longer_run_gives(news_table):
    """Reading ALT_LOOKBACK_SESSIONS of items before the first day is enough: a run over a later part of the range
    gives the same rows as the run over all of it."""
    items = AltItems(news=NEWS, filings=FILINGS, insider=INSIDER, macro=macro_items())
    full = compute_alt_features(grid(), items)
    part = compute_alt_features(grid(days=DAYS[20:]), items)
    pd.testing.assert_frame_equal(part, full[full["date"] >= DAYS[20]].reset_index(drop=True), check_exact=True)


def load_tweets(path) -> pd.DataFrame:
    with gzip.open(path, "rt") as handle:
        tweets = pd.DataFrame([json.loads(line) for line in handle])
    public = pd.to_datetime(tweets["created_at"], format="%a %b %d %H:%M:%S %z %Y").dt.tz_convert(None)
    return pd.DataFrame(
        {"ticker": tweets["ticker"], "item_id": tweets["id_str"], "public_at": public, "text": tweets["text"]}
    )


def load_fnspid(folder, tickers) -> pd.DataFrame:
    """FNSPID daily scores as one item per (ticker, news day), known after that day's close (no times are given)."""
    frames = []
    for ticker in tickers:
        raw = pd.read_csv(folder / f"{ticker}.csv")
        raw = raw[raw["News_flag"] == 1]
        day = pd.to_datetime(raw["Date"], utc=True).dt.tz_localize(None).dt.normalize()
        # Sentiment_gpt is 1..5: centre and scale to [-1, 1]
        frames.append(pd.DataFrame({"ticker": ticker, "public_at": day + pd.Timedelta(hours=23),
                                    "sentiment": (raw["Sentiment_gpt"].to_numpy() - 3) / 2}))  # fmt: skip
    news = pd.concat(frames, ignore_index=True)
    return news.assign(date=session_for(news["public_at"]).to_numpy()).dropna(subset=["date"])


NEWS_TICKERS = ["C", "GE", "KO"]  # FNSPID symbols with news days in 2015, also in the stocknet tweets


@pytest.fixture(scope="module")
def real_items(shared_data) -> AltItems:
    tweets = load_tweets(shared_data / "alternative" / "tweets" / "stocknet_tweets_2014_2015.jsonl.gz")
    sentences = load_phrasebank(
        shared_data / "alternative" / "sentiment_training" / "financial_phrasebank_all_data.csv"
    )
    model = SentimentModel(build_pipeline(char_ngrams=False).fit(sentences["text"], sentences["label"]))
    tweets["sentiment"] = model.score(tweets["text"])
    tweets["date"] = session_for(tweets["public_at"]).to_numpy()
    news = load_fnspid(shared_data / "alternative" / "news" / "fnspid_daily_sentiment", NEWS_TICKERS)
    return AltItems(news=news, social=tweets)


def test_real_tweets_and_news(real_items):
    tickers = sorted(real_items.social["ticker"].unique())
    days = calendar.sessions("2015-01-02", "2015-12-31")
    table = compute_alt_features(grid(tickers, days), real_items)
    assert len(table) == len(tickers) * len(days)
    social = table["social_covered"] == 1
    assert social.mean() > 0.5  # most of 87 tickers are talked about every month
    assert table.loc[social, "social_count"].notna().all() and table.loc[~social, "social_count"].isna().all()
    # the count equals the tweets of that session, for a ticker and day picked from the data
    tweets = real_items.social
    day, ticker = pd.Timestamp("2015-06-17"), "AAPL"
    expected = ((tweets["date"] == day) & (tweets["ticker"] == ticker)).sum()
    assert expected > 0 and row(table, day, ticker)["social_count"] == pytest.approx(math.log1p(expected))
    news = table[table["ticker"].isin(NEWS_TICKERS)]
    assert news["news_covered"].mean() > 0.3 and news["news_sentiment"].dropna().between(-1, 1).all()
    assert (table.loc[~table["ticker"].isin(NEWS_TICKERS), "news_covered"] == 0).all()
    assert set(FAMILIES) == {"news", "social", "filings", "macro"}
    assert ALT_LOOKBACK_SESSIONS >= 21 + 1
