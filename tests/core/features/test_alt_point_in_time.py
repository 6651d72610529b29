"""Point in time: nothing that became public at or after session D's close changes a feature of D or earlier.

Each test perturbs the items public from D's close on (changes, additions, deletions; macro values and revisions
published after D), recomputes, and compares every row dated <= D exactly (NaN equal to NaN); rows after D must
change, or the perturbation proved nothing."""

import gzip
import json

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from stockpred_core.data import calendar
from stockpred_core.data.alternative import local_to_utc_naive, session_for
from stockpred_core.data.macro_calendar import published_at
from stockpred_core.features.alternative import AltItems, compute_alt_features
from stockpred_core.features.alternative_catalog import ALT_COLUMNS
from stockpred_core.models.sentiment import SentimentModel, build_pipeline, load_phrasebank

MACRO = ("VIXCLS", "DGS10", "TEDRATE", "CPIAUCSL", "UNRATE")
KINDS = ("news", "social", "filings", "insider", "macro")


def close_of(day: pd.Timestamp) -> pd.Timestamp:
    """Session `day`'s close as tz-naive UTC (13:00 ET on half days)."""
    close = xcals.get_calendar(calendar.EXCHANGE, start=calendar.FIRST_SESSION).session_close(day)
    return close.tz_convert("UTC").tz_localize(None)


def stamp(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(date=session_for(frame["public_at"]).to_numpy()).reset_index(drop=True)


def grid(tickers, days) -> pd.DataFrame:
    return pd.DataFrame([(d, t) for d in days for t in tickers], columns=["date", "ticker"])


def moments(rng, n: int, start: str, end: str) -> pd.Series:
    """Random moments to the minute, weekends and nights included, a tenth of them on a session's close exactly
    or a minute before it."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    at = start + pd.to_timedelta(rng.integers(0, int((end - start).total_seconds() // 60), n), unit="min")
    days = calendar.sessions(start, end)
    edge = rng.random(n) < 0.1
    closes = pd.DatetimeIndex([close_of(d) for d in rng.choice(days, int(edge.sum()))])
    at = at.to_numpy()
    at[edge] = (closes - pd.to_timedelta(rng.integers(0, 2, int(edge.sum())), unit="min")).to_numpy()
    return pd.Series(at)


def macro_rows(series: str, observed: pd.Series, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"series": series, "observed_on": observed, "value": values, "public_at": published_at(series, observed)}
    )


def synthetic(seed: int, tickers: list[str], start: str, end: str) -> AltItems:
    rng = np.random.default_rng(seed)

    def texts(n: int) -> pd.DataFrame:
        sentiment = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(-1, 1, n))
        frame = pd.DataFrame({"ticker": rng.choice(tickers, n), "public_at": moments(rng, n, start, end)})
        return stamp(frame.assign(item_id=[f"i{i}" for i in range(n)], sentiment=sentiment))

    filings = pd.DataFrame({"ticker": rng.choice(tickers, 300), "public_at": moments(rng, 300, start, end)})
    filings = stamp(filings.assign(form=rng.choice(["8-K", "8-K/A", "10-Q", "10-K", "10-K/A", "4"], 300)))
    insider = pd.DataFrame({"ticker": rng.choice(tickers, 400), "public_at": moments(rng, 400, start, end)})
    insider = stamp(insider.assign(code=rng.choice(list("PSAM"), 400), shares=rng.integers(1, 10_000, 400) * 1.0))
    daily = pd.Series(pd.bdate_range(pd.Timestamp(start) - pd.Timedelta(days=30), end))
    months = pd.Series(pd.date_range(pd.Timestamp(start) - pd.Timedelta(days=500), end, freq="MS"))
    macro = [macro_rows(s, daily, rng.normal(15, 3, len(daily))) for s in MACRO[:3]]
    macro += [macro_rows(s, months, rng.uniform(5, 10, len(months))) for s in MACRO[3:]]
    macro = stamp(pd.concat(macro, ignore_index=True)).dropna(subset=["date"])  # the raw layer starts in 2013
    macro = macro[macro["public_at"] < pd.Timestamp(end)]
    return AltItems(news=texts(2500), social=texts(4000), filings=filings, insider=insider, macro=macro)


def perturb_after(items: AltItems, close: pd.Timestamp, seed: int) -> AltItems:
    """Items changed, added and deleted, all public at or after `close`; the rest untouched."""
    rng = np.random.default_rng(seed)
    out = {}
    for kind in KINDS:
        frame = getattr(items, kind)
        if frame is None:
            out[kind] = None
            continue
        later = frame["public_at"] >= close
        keep = ~later | (rng.random(len(frame)) < 0.7)  # delete 30% of the later items
        changed = frame[keep].copy()
        moved = changed["public_at"] >= close
        if kind in ("news", "social"):
            changed.loc[moved, "sentiment"] = rng.uniform(-1, 1, int(moved.sum()))
        elif kind == "filings":
            changed.loc[moved, "form"] = rng.choice(["8-K", "10-Q", "10-K"], int(moved.sum()))
        elif kind == "insider":
            changed.loc[moved, "code"] = rng.choice(["P", "S"], int(moved.sum()))
        else:
            changed.loc[moved, "value"] = changed.loc[moved, "value"] * 1.5
        # new items: copies of random earlier rows made public from the close on (macro: revisions of old periods)
        added = frame.sample(min(200, len(frame)), random_state=seed).copy()
        added["public_at"] = close + pd.to_timedelta(rng.integers(0, 40 * 24 * 60, len(added)), unit="min")
        if kind == "macro":
            added["value"] = added["value"] + 100
        out[kind] = stamp(pd.concat([changed, added], ignore_index=True))
    return AltItems(**out)


def assert_point_in_time(before: pd.DataFrame, after: pd.DataFrame, day: pd.Timestamp) -> None:
    early = before["date"] <= day
    assert early.any() and (~early).any()
    pd.testing.assert_frame_equal(after[early], before[early], check_exact=True)
    late_before, late_after = before.loc[~early, ALT_COLUMNS], after.loc[~early, ALT_COLUMNS]
    differs = ~((late_before == late_after) | (late_before.isna() & late_after.isna()))
    assert differs.any(axis=None), "the perturbation after D changed nothing: it proves nothing"


TICKERS = [f"S{i:02d}" for i in range(12)]
DAYS = calendar.sessions("2015-01-02", "2015-06-30")


@pytest.fixture(scope="module")
def synthetic_items() -> AltItems:
    return synthetic(7, TICKERS, "2014-01-01", "2015-08-31")


@pytest.fixture(scope="module")
def synthetic_table(synthetic_items) -> pd.DataFrame:
    table = compute_alt_features(grid(TICKERS, DAYS), synthetic_items)
    for family in ("news", "social", "filings"):
        assert table[f"{family}_covered"].mean() > 0.5  # the test data covers most rows: the checks bite
    assert (table["macro_covered"] == 1).mean() > 0.9
    return table


@pytest.mark.parametrize("draw", range(12))
def test_nothing_after_the_close_changes_the_features_of_the_day(synthetic_items, synthetic_table, draw):
    day = pd.Timestamp(np.random.default_rng(draw).choice(DAYS[:-5]))
    perturbed = perturb_after(synthetic_items, close_of(day), seed=draw)
    after = compute_alt_features(grid(TICKERS, DAYS), perturbed)
    assert_point_in_time(synthetic_table, after, day)


def test_an_item_just_before_the_close_counts_for_the_day_and_just_after_for_the_next(synthetic_items):
    day = pd.Timestamp("2015-03-10")
    close = close_of(day)
    base = synthetic_items.news[synthetic_items.news["ticker"] != "S00"]
    extra = pd.DataFrame({"ticker": ["S00"] * 3, "item_id": ["x1", "x2", "x3"], "sentiment": [0.9, 0.9, 0.9]})
    days = calendar.sessions("2015-03-02", "2015-03-20")
    tables = {}
    for name, at in {
        "before": close - pd.Timedelta(minutes=1),
        "at": close,
        "after": close + pd.Timedelta(hours=1),
    }.items():
        news = pd.concat([base, stamp(extra.assign(public_at=at))], ignore_index=True)
        items = AltItems(news=news)
        tables[name] = compute_alt_features(grid(["S00"], days), items).set_index("date")
    assert tables["before"].loc[day, "news_count"] == pytest.approx(np.log1p(3))
    assert tables["at"].loc[day, "news_covered"] == 0  # S00's only items: at the close they count for the 11th
    following = calendar.add_sessions(day, 1)
    assert tables["at"].loc[following, "news_count"] == pytest.approx(np.log1p(3))
    pd.testing.assert_frame_equal(tables["at"], tables["after"])
    assert not tables["before"].loc[day].equals(tables["at"].loc[day])


def read_fred(folder, series: str) -> pd.DataFrame:
    raw = pd.read_csv(folder / f"{series}.csv")
    observed = pd.to_datetime(raw.iloc[:, 0], format="mixed")
    values = pd.to_numeric(raw.iloc[:, 1], errors="coerce")  # "." on days without a value
    rows = macro_rows(series, observed[values.notna()], values[values.notna()].to_numpy())
    return rows[rows["observed_on"] >= "2012-01-01"]


def read_tesla_filings(folder) -> pd.DataFrame:
    recent = json.loads((folder / "company_submission.json").read_text())["filings"]["recent"]
    frame = pd.DataFrame({"form": recent["form"], "accession": recent["accessionNumber"]})
    # EDGAR's acceptanceDateTime is Eastern wall-clock time despite its "Z"
    accepted = pd.Series(recent["acceptanceDateTime"]).str.replace(r"\.000Z$", "", regex=True)
    return frame.assign(ticker="TSLA", public_at=local_to_utc_naive(accepted))


@pytest.fixture(scope="module")
def real_items(shared_data) -> AltItems:
    alternative = shared_data / "alternative"
    with gzip.open(alternative / "tweets" / "stocknet_tweets_2014_2015.jsonl.gz", "rt") as handle:
        tweets = pd.DataFrame([json.loads(line) for line in handle])
    public = pd.to_datetime(tweets["created_at"], format="%a %b %d %H:%M:%S %z %Y").dt.tz_convert(None)
    sentences = load_phrasebank(alternative / "sentiment_training" / "financial_phrasebank_all_data.csv")
    model = SentimentModel(build_pipeline(char_ngrams=False).fit(sentences["text"], sentences["label"]))
    social = pd.DataFrame({"ticker": tweets["ticker"], "item_id": tweets["id_str"], "public_at": public})
    social = stamp(social.assign(sentiment=model.score(tweets["text"])))
    news = []
    for ticker in ("C", "GE", "KO", "QQQ"):
        raw = pd.read_csv(alternative / "news" / "fnspid_daily_sentiment" / f"{ticker}.csv")
        raw = raw[raw["News_flag"] == 1]
        day = pd.to_datetime(raw["Date"], utc=True).dt.tz_localize(None).dt.normalize()
        news.append(pd.DataFrame({"ticker": ticker, "public_at": day + pd.Timedelta(hours=23),
                                  "sentiment": (raw["Sentiment_gpt"].to_numpy() - 3) / 2}))  # fmt: skip
    news = stamp(pd.concat(news, ignore_index=True)).dropna(subset=["date"])
    macro = stamp(pd.concat([read_fred(shared_data / "macro" / "fred", s) for s in MACRO], ignore_index=True))
    filings = stamp(read_tesla_filings(alternative / "sec")).dropna(subset=["date"])
    return AltItems(news=news, social=social, filings=filings, macro=macro.dropna(subset=["date"]))


def test_real_data_nothing_after_the_close_changes_the_day(real_items):
    tickers = sorted({*real_items.social["ticker"], "TSLA"})
    days = calendar.sessions("2014-06-02", "2015-12-31")
    base = compute_alt_features(grid(tickers, days), real_items)
    assert base["social_covered"].mean() > 0.5 and base["macro_covered"].min() == 1.0
    assert base.loc[base["ticker"] == "TSLA", "filings_covered"].eq(1).all()
    rng = np.random.default_rng(3)
    for draw, day in enumerate(sorted(rng.choice(days[:-10], 5, replace=False))):
        day = pd.Timestamp(day)
        after = compute_alt_features(grid(tickers, days), perturb_after(real_items, close_of(day), seed=draw))
        assert_point_in_time(base, after, day)
