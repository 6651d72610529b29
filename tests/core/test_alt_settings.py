"""The alternative-data settings: sources off by default, each source says where it reads, feature families
validated against the catalog and their sources; the definitions grow the alternative group only as configured."""

import dagster as dg
import pytest
from support import ROOT

from stockpred_core.data.macro_calendar import SERIES
from stockpred_core.settings import SettingsError, load_settings

RECORDED = {
    "STOCKPRED_NEWS_PROVIDERS": "files",
    "STOCKPRED_NEWS_PATHS": "news/a.csv, news/b",
    "STOCKPRED_SOCIAL_PROVIDERS": "Files,twitter",
    "STOCKPRED_SOCIAL_PATHS": "tweets",
    "STOCKPRED_FILINGS_SOURCE": "sec_files",
    "STOCKPRED_SEC_PATH": "sec",
    "STOCKPRED_MACRO_SOURCE": "fred_files",
    "STOCKPRED_MACRO_PATH": "fred",
}


def test_no_alternative_source_is_on_by_default():
    settings = load_settings({})
    assert settings.alt_sources == {} and settings.feature_families == ("technical",)
    assert (settings.filings_source, settings.macro_source) == ("none", "none")


def test_sources_and_families_parse_in_canonical_order():
    settings = load_settings({**RECORDED, "STOCKPRED_FEATURE_FAMILIES": "macro, technical,news"})
    assert settings.news_paths == ("news/a.csv", "news/b") and settings.social_providers == ("files", "twitter")
    assert settings.alt_sources == {
        "news": ["files"], "social": ["files", "twitter"], "filings": ["sec_files"], "macro": ["fred_files"],
    }  # fmt: skip
    assert settings.feature_families == ("technical", "news", "macro") and settings.alt_families == ["news", "macro"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"STOCKPRED_NEWS_PROVIDERS": "files,bloomberg"},
            "STOCKPRED_NEWS_PROVIDERS takes a comma list of files, newsapi",
        ),
        ({"STOCKPRED_FILINGS_SOURCE": "edgar"}, "STOCKPRED_FILINGS_SOURCE must be one of sec, sec_files, none"),
        ({"STOCKPRED_MACRO_SOURCE": "fred_files"}, "need STOCKPRED_MACRO_PATH to be set"),
        ({"STOCKPRED_FILINGS_SOURCE": "sec"}, "need STOCKPRED_SEC_USER_AGENT, STOCKPRED_CIK_MAP_FILE to be set"),
        ({"STOCKPRED_SOCIAL_PROVIDERS": "files"}, "need STOCKPRED_SOCIAL_PATHS to be set"),
        ({"STOCKPRED_FEATURE_FAMILIES": "technical,weather"}, "unknown feature families ['weather']"),
        ({"STOCKPRED_FEATURE_FAMILIES": "news,filings"}, "names news, filings but no source of them is configured"),
    ],
)
def test_a_misconfigured_source_stops_start_up_naming_the_variable(environ, message):
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(environ)


def test_the_definitions_grow_the_alternative_group_only_as_configured(monkeypatch):
    from stockpred_assets.definitions import build_definitions

    def alternative_keys(defs: dg.Definitions) -> set[str]:
        graph = defs.resolve_asset_graph()
        return {node.key.to_user_string() for node in graph.asset_nodes if node.group_name == "alternative"}

    assert alternative_keys(build_definitions()) == set()
    for name, value in {**RECORDED, "STOCKPRED_SOCIAL_PROVIDERS": "files"}.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions()
    assert alternative_keys(defs) == {
        "raw_news_files", "raw_social_files", "raw_filings_sec", "macro_series", "sentiment_model", "alt_features",
    }  # fmt: skip
    job = defs.resolve_job_def("alternative_data_job")
    assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == {
        "raw_news_files", "raw_social_files", "raw_filings_sec", "macro_series", "alt_features",
    }  # fmt: skip
    assert defs.resolve_schedule_def("alternative_data_schedule").job_name == "alternative_data_job"
    assert isinstance(defs.resources["filings_provider"], dg.ConfigurableResource)
    defs.resolve_all_job_defs()


def test_the_docs_show_every_macro_publication_rule():
    text = (ROOT / "docs" / "alternative_data.md").read_text()
    for spec in SERIES.values():
        assert f"| `{spec.series}` | {spec.frequency} | {spec.title} | {spec.rule} |" in text
