"""The alternative raw assets on real recorded data (stocknet tweets, Benzinga headlines through a local NewsAPI-style
server, EDGAR recordings, FRED CSVs), the sentiment model in MLflow on the real Financial PhraseBank, and the
alternative group in the definitions."""

import json

import dagster as dg
import pandas as pd
import pytest
from support.alt_api_bodies import SP500_CIK, benzinga_headlines, newsapi_error, newsapi_page, stocknet_tweets
from support.recorded_server import RecordedServer, Reply

from stockpred_assets.alternative.checks import raw_checks, sentiment_model_beats_neutral
from stockpred_assets.alternative.ingestion import macro_series, raw_filings_sec, raw_news_newsapi, raw_social_files
from stockpred_assets.alternative.sentiment import build_sentiment_model, sentiment_model_name
from stockpred_core.data import alternative as alt
from stockpred_core.io.lake import Lake
from stockpred_core.io.model_card import CHAMPION_ALIAS
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import FredFilesProvider, NewsApiProvider, SecFilesProvider, SocialFilesProvider
from stockpred_resources.tracking import MLflowResource

JANUARY = {"dagster/asset_partition_range_start": "2014-01-02", "dagster/asset_partition_range_end": "2014-01-31"}
WEEKDAYS = pd.bdate_range("2014-01-02", "2014-01-31")
SESSIONS = WEEKDAYS.drop(pd.Timestamp("2014-01-20"))  # Martin Luther King Jr. Day
PHRASEBANK = "alternative/sentiment_training/financial_phrasebank_all_data.csv"
NEWS_KEY = "NEWSKEY-fedcba9876543210"


@pytest.fixture(scope="module")
def tweets_file(shared_data, tmp_path_factory):
    """The real stocknet tweets of AAPL and MSFT created from 2013-12-31 to 2014-02-01 (UTC), as recorded."""
    path = tmp_path_factory.mktemp("tweets") / "tweets.jsonl"
    rows = [t for ticker in ("AAPL", "MSFT") for t in stocknet_tweets(shared_data, ticker, "2013-12-31", "2014-02-01")]
    path.write_text("".join(line(t) + "\n" for t in rows))
    return path


def line(tweet: dict, **changes) -> str:
    """A tweet as the recording's JSON line (without the helper's parsed `created`)."""
    return json.dumps({k: v for k, v in {**tweet, **changes}.items() if k != "created"})


def materialize(assets, resources, lake_dir, tags=JANUARY, instance=None, **kwargs):
    return dg.materialize(
        assets,
        resources={**resources, "lake": LakeResource(url=str(lake_dir))},
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        **kwargs,
    )


def metadata(result, name):
    events = result.asset_materializations_for_node(name)
    return {k: v.value for k, v in events[-1].metadata.items()}, len(events)


def test_real_tweets_land_on_the_session_they_count_for_and_a_rerun_replaces_the_window(tmp_path, tweets_file):
    provider = SocialFilesProvider(paths=[str(tweets_file)], tickers=["AAPL", "MSFT"])
    assets = [raw_social_files, *raw_checks(raw_social_files)]
    result = materialize(assets, {"social_files_provider": provider}, tmp_path)
    meta, partitions = metadata(result, "raw_social_files")
    assert result.success and partitions == len(WEEKDAYS)
    rows = Lake(str(tmp_path)).read_range("raw", "social_files", WEEKDAYS[0], WEEKDAYS[-1])
    assert set(rows["ticker"]) == {"AAPL", "MSFT"} and set(rows["date"]) <= set(SESSIONS)
    assert (rows["date"] == alt.session_for(rows["public_at"])).all()
    # New Year's Eve after the close and New Year's Day count for Thu 2 January; Friday 3 January 21:00 UTC (16:00
    # New York) is after that day's close: Monday 6 January.
    early = rows[rows["public_at"] < pd.Timestamp("2014-01-02 21:00")]
    assert len(early) and set(early["date"]) == {pd.Timestamp("2014-01-02")}
    edge = rows[rows["public_at"].between(pd.Timestamp("2014-01-03 21:00"), pd.Timestamp("2014-01-06 14:30"))]
    assert len(edge) and set(edge["date"]) == {pd.Timestamp("2014-01-06")}
    assert meta["dagster/row_count"] == len(rows) and meta["tickers"] == 2
    assert sum(meta["rows_per_session"].values()) == len(rows) and meta["failed_subjects"] == 0
    cells = len(rows[["date", "ticker"]].drop_duplicates())  # the recording has gaps (none on 17 January)
    assert 30 < cells < 2 * len(SESSIONS) and meta["coverage_share"] == round(cells / (2 * len(SESSIONS)), 4)
    assert meta["coverage"].startswith(f"{cells} of {2 * len(SESSIONS)} ticker x sessions")
    assert meta["quarantined"] + meta["duplicates_dropped"] >= 0 and "| date " in meta["preview"]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"keys_unique": True, "dated_point_in_time": True}

    again = materialize([raw_social_files], {"social_files_provider": provider}, tmp_path)
    assert again.success
    reread = Lake(str(tmp_path)).read_range("raw", "social_files", WEEKDAYS[0], WEEKDAYS[-1])
    assert len(reread) == len(rows) and not reread.duplicated(alt.KEYS["social"]).any()


def test_corrupted_rows_are_quarantined_with_their_reasons_and_the_rest_loads(tmp_path, shared_data):
    real = stocknet_tweets(shared_data, "MSFT", "2014-01-06", "2014-01-09")
    lines = [line(t) for t in real] + [line(real[0]), line(real[1], id_str="corrupted-1", retweet_count=-5)]
    lines += ['{"ticker": "MSFT", "id_str": "2", "created_at": "yesterday"', line(real[2], favorite_count="lots")]
    source = tmp_path / "tweets.jsonl"
    source.write_text("\n".join(lines) + "\n")
    provider = SocialFilesProvider(paths=[str(source)], tickers=["MSFT"])
    result = materialize([raw_social_files], {"social_files_provider": provider}, tmp_path / "lake")
    meta, _ = metadata(result, "raw_social_files")
    lake = Lake(str(tmp_path / "lake"))
    rows = lake.read_range("raw", "social_files", WEEKDAYS[0], WEEKDAYS[-1])
    assert len(rows) == len(real) and set(rows["item_id"]) == {t["id_str"] for t in real}
    quarantine = lake.read_table("raw", "quarantine_social_files").set_index("rule")
    assert sorted(quarantine.index) == ["duplicate", "range"]
    assert quarantine.loc["range", "reason"] == "reposts -5 is outside [0, inf]"
    assert quarantine.loc["duplicate", "reason"].startswith(f"duplicate of (MSFT, {real[0]['id_str']})")
    assert json.loads(quarantine.loc["range", "raw"])["item_id"] == "corrupted-1"
    rejects = lake.read_table("raw", "rejects_social_files")
    assert len(rejects) == 2 and rejects["reason"].str.contains("not JSON|not a number").all()
    assert (meta["quarantined"], meta["duplicates_dropped"], meta["rejects"]) == (2, 1, 2)
    assert meta["quarantined_by_rule"] == {"duplicate": 1, "range": 1}

    materialize([raw_social_files], {"social_files_provider": provider}, tmp_path / "lake")
    assert len(lake.read_table("raw", "quarantine_social_files")) == 2  # kept across runs, once each
    assert len(lake.read_table("raw", "rejects_social_files")) == 2


def test_a_failing_ticker_is_dead_lettered_without_the_key_and_keeps_its_rows(tmp_path, shared_data):
    window = {"dagster/asset_partition_range_start": "2020-05-18", "dagster/asset_partition_range_end": "2020-06-05"}
    agilent = benzinga_headlines(shared_data, "A", "2020-05-15 20:00", "2020-06-05 20:00")
    server = RecordedServer().start()
    provider = NewsApiProvider(
        api_key=NEWS_KEY, base_url=server.url, companies_file=str(shared_data / SP500_CIK), tickers=["A", "MSFT"],
        max_attempts=1, requests_per_minute=1e6, requests_per_day=None,
    )  # fmt: skip
    try:
        server.route("/v2/everything", Reply.json(newsapi_page(agilent)))
        first = materialize([raw_news_newsapi], {"news_newsapi_provider": provider}, tmp_path, tags=window)
        assert metadata(first, "raw_news_newsapi")[0]["failed_subjects"] == 0
        server.reset()
        server.route("/v2/everything", Reply.json(newsapi_page(agilent)), q='"Agilent Technologies"')
        leaky = f"parameter q is invalid for apiKey={NEWS_KEY}"
        server.route("/v2/everything", Reply.json(newsapi_error("parameterInvalid", leaky), status=400),
                     q='"Microsoft" OR MSFT')  # fmt: skip
        second = materialize([raw_news_newsapi], {"news_newsapi_provider": provider}, tmp_path, tags=window)
    finally:
        provider.close_http()
        server.stop()
    meta, _ = metadata(second, "raw_news_newsapi")
    assert meta["failed_subjects"] == 1 and NEWS_KEY not in json.dumps({k: str(v) for k, v in meta.items()})
    lake = Lake(str(tmp_path))
    dead = lake.read_range("raw", "dead_letter_news_newsapi", "2020-05-18", "2020-06-05")
    assert set(dead["ticker"]) == {"MSFT"} and len(dead) == len(pd.bdate_range("2020-05-18", "2020-06-05")) - 1
    assert NEWS_KEY not in dead["reason"].iloc[0] and "parameterInvalid" in dead["reason"].iloc[0]
    news = lake.read_range("raw", "news_newsapi", "2020-05-18", "2020-06-05")
    assert news.groupby("ticker").size().to_dict() == {"A": len(agilent), "MSFT": len(agilent)}  # MSFT kept its rows


def test_a_missing_api_key_fails_the_run_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NEWSAPI_API_KEY", raising=False)
    provider = NewsApiProvider(api_key=dg.EnvVar("NEWSAPI_API_KEY"), tickers=["A"])
    with pytest.raises(dg.DagsterInvalidConfigError, match='environment variable "NEWSAPI_API_KEY" which is not set'):
        materialize([raw_news_newsapi], {"news_newsapi_provider": provider}, tmp_path)
    assert not Lake(str(tmp_path)).partition_dates("raw", "news_newsapi")


def test_filings_and_insider_transactions_by_edgar_acceptance_time(tmp_path, shared_data):
    provider = SecFilesProvider(path=str(shared_data / "alternative" / "sec"), tickers=["TSLA"])
    tags = {"dagster/asset_partition_range_start": "2014-01-02", "dagster/asset_partition_range_end": "2018-12-31"}
    result = materialize([raw_filings_sec, *raw_checks(raw_filings_sec)], {"filings_provider": provider}, tmp_path,
                         tags=tags)  # fmt: skip
    meta, _ = metadata(result, "raw_filings_sec")
    filings = Lake(str(tmp_path)).read_range("raw", "filings_sec", "2014-01-02", "2018-12-31")
    assert meta["dagster/row_count"] == len(filings) > 100 and set(filings["ticker"]) == {"TSLA"}
    assert {"8-K", "10-Q", "10-K", "4"} <= set(filings["form"])
    assert (filings["date"] == alt.session_for(filings["public_at"])).all()
    assert "insider_rows" in meta and "insider_coverage" in meta
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_macro_values_are_dated_by_their_publication(tmp_path, shared_data):
    provider = FredFilesProvider(path=str(shared_data / "macro" / "fred"), series=["CPIAUCSL", "VIXCLS"])
    result = materialize([macro_series, *raw_checks(macro_series)], {"macro_provider": provider}, tmp_path)
    meta, _ = metadata(result, "macro_series")
    macro = Lake(str(tmp_path)).read_range("raw", "macro_series", WEEKDAYS[0], WEEKDAYS[-1]).set_index("series")
    cpi = macro.loc[["CPIAUCSL"]]
    # November 2013's CPI counts from 1 January 2014 (the 1st of M+2, the module's late-side rule): the 2nd, the
    # first session; December's from 1 February, after this window
    assert cpi["observed_on"].tolist() == [pd.Timestamp("2013-11-01")]
    assert cpi["date"].tolist() == [pd.Timestamp("2014-01-02")]
    vix = macro.loc["VIXCLS"].sort_values("observed_on")
    assert (vix["date"] > vix["observed_on"]).all()  # a day's close is known from the next session
    assert meta["series"] == 2 and all(c.passed for c in result.get_asset_check_evaluations())


def test_sentiment_model_is_registered_with_its_accuracy_and_becomes_champion(tmp_path, shared_data):
    tracking = MLflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
        registered_model="alt-test",
    )
    asset = build_sentiment_model(str(shared_data / PHRASEBANK))
    result = dg.materialize([asset, sentiment_model_beats_neutral], resources={"mlflow_resource": tracking})
    meta, _ = metadata(result, "sentiment_model")
    assert meta["holdout_accuracy"] > meta["neutral_baseline_accuracy"] + 0.1 and meta["cv_accuracy"] > 0.7
    assert meta["model_version"] == "1" and meta["champion"] is True
    client = tracking.client()
    name = sentiment_model_name(tracking)
    assert name == "alt-test-sentiment"
    version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    metrics = client.get_run(version.run_id).data.metrics
    assert metrics["holdout_accuracy"] == pytest.approx(meta["holdout_accuracy"])
    assert "confusion.json" in [a.path for a in client.list_artifacts(version.run_id)]
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]


def test_sentiment_model_without_sentences_fails_clearly(tmp_path):
    tracking = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registered_model="alt-test")
    result = dg.materialize([build_sentiment_model(None)], resources={"mlflow_resource": tracking},
                            raise_on_error=False)  # fmt: skip
    errors = [e.event_specific_data.error.to_string() for e in result.all_events if e.is_failure]
    assert not result.success and any("STOCKPRED_SENTIMENT_SENTENCES" in m for m in errors)


def test_a_refetch_that_holds_less_keeps_what_the_earlier_run_stored(tmp_path, shared_data):
    """The second run's source answers only half the headlines (a page cap, a truncated reply): the window keeps the
    earlier rows it does not hold again, and rows it does hold replace their earlier copies."""
    window = {"dagster/asset_partition_range_start": "2020-05-18", "dagster/asset_partition_range_end": "2020-06-05"}
    agilent = benzinga_headlines(shared_data, "A", "2020-05-15 20:00", "2020-06-05 20:00")
    half = agilent[: len(agilent) // 2]
    server = RecordedServer().start()
    provider = NewsApiProvider(
        api_key=NEWS_KEY, base_url=server.url, companies_file=str(shared_data / SP500_CIK), tickers=["A"],
        max_attempts=1, requests_per_minute=1e6, requests_per_day=None,
    )  # fmt: skip
    try:
        server.route("/v2/everything", Reply.json(newsapi_page(agilent)))
        materialize([raw_news_newsapi], {"news_newsapi_provider": provider}, tmp_path, tags=window)
        lake = Lake(str(tmp_path))
        before = lake.read_range("raw", "news_newsapi", "2020-05-18", "2020-06-05")
        server.reset()
        server.route("/v2/everything", Reply.json(newsapi_page(half)))
        second = materialize([raw_news_newsapi], {"news_newsapi_provider": provider}, tmp_path, tags=window)
    finally:
        provider.close_http()
        server.stop()
    after = lake.read_range("raw", "news_newsapi", "2020-05-18", "2020-06-05")
    assert len(before) == len(agilent) > len(half) > 0
    assert sorted(after["item_id"]) == sorted(before["item_id"])  # nothing lost, nothing twice
    assert metadata(second, "raw_news_newsapi")[0]["news_rows_kept_from_earlier_runs"] == len(agilent) - len(half)
    refetched = set(after.loc[after["ingested_at"] > before["ingested_at"].max(), "item_id"])
    assert len(refetched) == len(half)  # the rows fetched again are the new copies
