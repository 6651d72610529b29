"""The daily `insights` asset on a small simulated world (predictions, sectors and a drift summary in a lake): the
HTML report is written and previewed, emailed once to each subscriber with `daily_report` through a real local SMTP
server, and not again when the day is materialized again; without SMTP settings the metadata says why not."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from support.smtp_server import SmtpServer

from stockpred_assets.insights.assets import insights
from stockpred_core.data.simulation import simulated_tickers, ticker_sector
from stockpred_core.insights.report import alerts_fired, build_insights, health_from, render_html
from stockpred_core.io.stream_events import alert_fields
from stockpred_resources.lake import LakeResource
from stockpred_resources.redis import RedisResource
from stockpred_resources.tracking import MLflowResource

DAY = pd.Timestamp("2024-03-15")
TICKERS = simulated_tickers(30)


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "date": DAY,
            "ticker": TICKERS,
            "prediction": rng.normal(0, 0.01, len(TICKERS)),
            "model_version": "4",
            "model_family": "lightgbm",
            "horizon": 1,
            "label": "return",
        }
    )


@pytest.fixture
def world(tmp_path):
    lake = LakeResource(url=str(tmp_path / "lake"))
    lake.write_partitions("evaluation", "predictions", _predictions(), [DAY])
    lake.write_table(
        "reference", "sectors_simulated", pd.DataFrame({"ticker": TICKERS, "sector": map(ticker_sector, TICKERS)})
    )
    drift = pd.DataFrame(
        {"date": [DAY], "status": ["warn"], "reasons": ["3 of 30 features drift"], "drift_share": [0.1],
         "max_psi_feature": ["rsi_14"], "live_rank_ic": [0.031], "baseline_rank_ic": [0.045]}
    )  # fmt: skip
    lake.write_partitions("monitoring", "drift_summary", drift, [DAY])
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(
        yaml.safe_dump(
            {
                "subscriptions": [
                    {"subscriber": "pm", "daily_report": True, "rules": [], "channels": {"email": "pm@example.com"}},
                    {"subscriber": "quiet", "rules": [{"kind": "top_n", "n": 3}], "channels": {"email": "q@x.com"}},
                ]
            }
        )
    )
    resources = {
        "lake": lake,
        "mlflow_resource": MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        "redis": RedisResource(url=None),
    }
    return {"lake": lake, "resources": resources, "subscriptions": str(subscriptions), "root": tmp_path}


def _materialize(world) -> dg.MaterializeResult:
    config = {"ops": {"insights": {"config": {"subscriptions_file": world["subscriptions"], "top_n": 5}}}}
    key = f"{DAY:%Y-%m-%d}"
    result = dg.materialize([insights], resources=world["resources"], partition_key=key, run_config=config)
    [event] = result.asset_materializations_for_node("insights")
    return event.metadata


@pytest.mark.slow  # materializes twice: about 10 s
def test_the_report_is_emailed_once_to_the_daily_report_subscribers(world, monkeypatch):
    smtp = SmtpServer().start()
    try:
        monkeypatch.setenv("STOCKPRED_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("STOCKPRED_SMTP_PORT", str(smtp.port))
        metadata = _materialize(world)
        assert metadata["emails_sent"].value == 1
        [message] = smtp.messages
        assert message["To"] == "pm@example.com" and message["Subject"] == "stockpred daily insights, 2024-03-15"
        html = message.get_body(("html",)).get_content()
        best = _predictions().sort_values("prediction").iloc[-1]
        assert best["ticker"] in html and ticker_sector(best["ticker"]) in html
        assert "v4 (lightgbm)" in html and "0.031" in html and "warn" in html and "rsi_14" in html
        assert "<script" not in html and "http" not in html.replace("http-equiv", "")  # no external assets
        path = metadata["report"].value
        assert path.endswith("reports/insights/2024-03-15.html") and open(path).read().strip() == html.strip()
        assert "Top signals" in metadata["preview"].value and best["ticker"] in metadata["preview"].value
        again = _materialize(world)  # materializing the day again does not resend
        assert again["emails_sent"].value == 0 and again["delivery"].value["recipients"] == {"pm": "duplicate"}
        assert len(smtp.messages) == 1
    finally:
        smtp.stop()


@pytest.mark.slow
def test_without_smtp_settings_the_metadata_says_it_was_not_sent(world, monkeypatch):
    monkeypatch.delenv("STOCKPRED_SMTP_HOST", raising=False)
    metadata = _materialize(world)
    assert metadata["emails_sent"].value == 0
    assert "STOCKPRED_SMTP_HOST is not set" in metadata["delivery"].value["not_sent"]


def test_signals_carry_their_intervals_and_the_sector_view_means():
    frame = _predictions()
    found = build_insights(DAY, frame, {t: ticker_sector(t) for t in TICKERS}, {"4": (-0.02, 0.03)},
                           health_from("4", "lightgbm", None), top_n=3)  # fmt: skip
    top = frame.sort_values("prediction", ascending=False).head(3)
    assert [s.ticker for s in found.top] == list(top["ticker"])
    assert found.top[0].low == pytest.approx(top["prediction"].iloc[0] - 0.02)
    assert found.top[0].high == pytest.approx(top["prediction"].iloc[0] + 0.03)
    assert [s.ticker for s in found.bottom] == list(frame.sort_values("prediction").head(3)["ticker"])
    means = frame.assign(sector=frame["ticker"].map(ticker_sector)).groupby("sector")["prediction"].mean()
    assert {s.sector: s.mean_prediction for s in found.sectors} == pytest.approx(means.to_dict())
    assert "no drift report for the day" in render_html(found)


def test_alerts_fired_reads_the_days_alerts_from_the_alerts_stream(client: redis.Redis, prefix):
    key = f"{prefix}:events"
    day_ms = int(dt.datetime(2024, 3, 15, 14, 0, tzinfo=dt.UTC).timestamp() * 1000)
    alert = {"subscriber": "pm", "rule": "above 0.02", "ticker": "S0001", "message": "S0001 rose"}
    client.xadd(key, alert_fields(alert), id=f"{day_ms - 86_400_000}-0")  # the day before
    client.xadd(key, alert_fields(alert), id=f"{day_ms}-0")
    client.xadd(key, {"kind": "predictions", "tickers": "", "data": b"{}"}, id=f"{day_ms}-1")
    assert alerts_fired(client, DAY, key=key) == [{**alert, "id": f"{day_ms}-0"}]
