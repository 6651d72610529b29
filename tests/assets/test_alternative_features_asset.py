"""alt_features over a real January 2014: the feature rows of KO, GE and V built from their real bars, the stocknet
tweets, FNSPID's daily news sentiment and the FRED CSVs ingested by the raw assets, texts scored by the sentiment
model trained on the real Financial PhraseBank and read back from MLflow."""

import gzip
import json

import dagster as dg
import pandas as pd
import pytest
from support.alt_api_bodies import FNSPID, STOCKNET

from stockpred_assets.alternative.checks import alt_features_uncovered_are_missing
from stockpred_assets.alternative.features import build_alt_features
from stockpred_assets.alternative.ingestion import macro_series, raw_news_files, raw_social_files
from stockpred_assets.alternative.sentiment import build_sentiment_model
from stockpred_core.data.schemas import BAR_COLUMNS
from stockpred_core.features.alternative_catalog import ALT_COLUMNS, ALT_FEATURE_SET_VERSION, columns_for
from stockpred_core.features.batch import compute_features
from stockpred_core.io.lake import Lake
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import FredFilesProvider, NewsFilesProvider, SocialFilesProvider
from stockpred_resources.tracking import MLflowResource

TICKERS = ["KO", "GE", "V"]  # in the S&P 500 file, stocknet's tweets and FNSPID's 2014 news
SOURCES = {"news": ["files"], "social": ["files"], "macro": ["fred_files"]}  # no filings source: mask 0, NaN
WINDOW = {"dagster/asset_partition_range_start": "2014-01-02", "dagster/asset_partition_range_end": "2014-01-31"}
RAW_WINDOW = {"dagster/asset_partition_range_start": "2013-01-02", "dagster/asset_partition_range_end": "2014-01-31"}


def real_bars(shared_data) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "market" / "all_stocks_5yr.csv.gz", parse_dates=["date"])
    frame = frame[frame["Name"].isin(TICKERS) & (frame["date"] <= "2014-02-28")].rename(columns={"Name": "ticker"})
    return frame.assign(adj_close=frame["close"], provider="files", ingested_at=pd.Timestamp("2024-01-01"))[BAR_COLUMNS]


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("alt")
    lake = Lake(str(root / "lake"))
    bars = real_bars(shared_data)
    days = pd.bdate_range(bars["date"].min(), bars["date"].max())  # weekday partitions, holidays empty
    lake.write_partitions("validated", "bars", bars, days)
    lake.write_partitions("features", "features", compute_features(bars), days)
    tweets = root / "tweets.jsonl"
    with gzip.open(shared_data / STOCKNET, "rt") as source, tweets.open("w") as out:
        out.writelines(line for line in source if json.loads(line)["ticker"] in TICKERS)
    news = [str(shared_data / FNSPID / name) for name in ("KO.csv", "GE.csv", "v.csv")]
    resources = {
        "lake": LakeResource(url=str(root / "lake")),
        "news_files_provider": NewsFilesProvider(paths=news, tickers=TICKERS),
        "social_files_provider": SocialFilesProvider(paths=[str(tweets)], tickers=TICKERS),
        "macro_provider": FredFilesProvider(path=str(shared_data / "macro" / "fred")),
        "mlflow_resource": MLflowResource(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifact_location=(root / "artifacts").as_uri(),
            registered_model="alt-features-test",
        ),
    }
    instance = dg.DagsterInstance.ephemeral()
    raw = dg.materialize([raw_news_files, raw_social_files, macro_series], resources=resources, instance=instance,
                         tags=RAW_WINDOW)  # fmt: skip
    assert raw.success
    light = {"ops": {"sentiment_model": {"config": {"class_weights": ["none"], "char_ngrams": False}}}}
    phrasebank = shared_data / "alternative" / "sentiment_training" / "financial_phrasebank_all_data.csv"
    trained = dg.materialize([build_sentiment_model(str(phrasebank))], resources=resources, run_config=light)
    assert trained.success
    result = dg.materialize(
        [build_alt_features(SOURCES), alt_features_uncovered_are_missing],
        resources=resources,
        instance=instance,
        tags=WINDOW,
        selection=["alt_features"],
    )
    table = lake.read_range("features", "alt_features", "2014-01-02", "2014-01-31")
    return result, table, bars


def test_one_row_per_feature_row_with_the_versioned_columns(world):
    result, table, bars = world
    assert result.success
    sessions = bars.loc[bars["date"].between("2014-01-02", "2014-01-31"), ["date", "ticker"]]
    assert len(table) == len(sessions) == 3 * 21  # 21 sessions: 22 weekdays less Martin Luther King Jr. Day
    assert list(table.columns) == ["date", "ticker", *ALT_COLUMNS, "alt_feature_set_version", "sentiment_model_version"]
    assert (table["alt_feature_set_version"] == ALT_FEATURE_SET_VERSION).all()
    assert (table["sentiment_model_version"] == "1").all()  # the scorer of every row's sentiment


def test_coverage_is_explicit_and_a_family_without_a_source_is_missing(world):
    _, table, _ = world
    filings = columns_for(["filings"])
    assert (table["filings_covered"] == 0).all() and table[[c for c in filings if c != "filings_covered"]].isna().all(
        axis=None
    )
    assert table["social_covered"].mean() > 0.8 and table["news_covered"].mean() > 0.3
    covered = table[table["social_covered"] == 1]
    assert covered["social_count"].notna().all() and covered["social_sentiment"].between(-1, 1).any()
    assert (table["macro_covered"] > 0).all()


def test_macro_values_are_the_ones_published_before_the_close(world, shared_data):
    _, table, _ = world
    vix = pd.read_csv(shared_data / "macro" / "fred" / "VIXCLS.csv", na_values=".", parse_dates=["DATE"])
    vix = vix.set_index("DATE")["VIXCLS"]
    day = table[table["date"] == pd.Timestamp("2014-01-03")]
    # Friday's feature holds Thursday's close (published the next day), never Friday's own
    assert day["macro_vix"].iloc[0] == pytest.approx(vix[pd.Timestamp("2014-01-02")])
    assert day["macro_vix"].iloc[0] != pytest.approx(vix[pd.Timestamp("2014-01-03")])


def test_metadata_reports_coverage_the_model_version_and_the_plot(world):
    result, _, _ = world
    events = result.asset_materializations_for_node("alt_features")
    meta = {k: v.value for k, v in events[-1].metadata.items()}
    assert len(events) == 22 and meta["dagster/row_count"] == 63
    assert meta["sentiment_model_version"] == "1" and meta["alt_feature_set_version"] == ALT_FEATURE_SET_VERSION
    assert meta["filings_coverage_share"] == 0 and meta["social_coverage_share"] > 0.8
    assert meta["sentiment_vs_returns_plot"].startswith("![plot](data:image/png;base64,")
    quintiles = {record.data["family"] for record in meta["sentiment_vs_next_return"].records}
    assert quintiles == {"news", "social"}
    assert set(meta["nan_share_by_feature"]) == set(ALT_COLUMNS)
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]


def test_each_alt_features_materialization_asks_for_fresh_online_vectors():
    """The service reads the alternative columns from the online vectors: each alt_features materialization
    requests online_features_job once (the run key is the event's), none before the first."""
    from stockpred_assets.alternative.automation import alt_features_online_sensor

    instance = dg.DagsterInstance.ephemeral()
    assert alt_features_online_sensor.job_name == "online_features_job"
    assert not _requests(alt_features_online_sensor(dg.build_sensor_context(instance=instance)))
    keys = []
    for day in ("2014-01-02", "2014-01-03"):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="alt_features", partition=day))
        context = dg.build_sensor_context(instance=instance, cursor=keys[-1][1] if keys else None)
        [request] = _requests(alt_features_online_sensor(context))
        assert request.tags["alt_features_partition"] == day
        keys.append((request.run_key, context.cursor))
        assert not _requests(alt_features_online_sensor(dg.build_sensor_context(instance=instance, cursor=keys[-1][1])))
    assert keys[0][0] != keys[1][0]


def _requests(result) -> list:
    return [r for r in result if isinstance(r, dg.RunRequest)]  # an asset sensor invoked directly yields
