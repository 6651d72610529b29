"""Secrets never leave a failing provider: an API key and a URL password planted in every kind of failure (error
bodies, notes, HTTP errors, bad bodies, exceptions quoting the URL) are absent from the logs, the Dagster event log,
the materialization metadata and the dead-letter table."""

from __future__ import annotations

import json
import logging

import dagster as dg
import pandas as pd
import pytest
from support.recorded_server import RecordedServer, Reply

from stockpred_assets.ingestion.assets import raw_bars_alphavantage, raw_bars_yahoo
from stockpred_core.io.lake import Lake
from stockpred_core.redaction import redact, redact_loggers, redact_url, secrets_in
from stockpred_resources.lake import LakeResource
from stockpred_resources.providers import AlphaVantageProvider, YahooProvider

API_KEY = "PLANTEDAVKEY7F3Q9Z"
PASSWORD = "Pl4ntedPW-9xq"
DAY = "2023-11-10"
# fast retries, and a breaker that stays closed so that every ticker fails in its own way
FAST = {
    "requests_per_minute": 1e6,
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.005,
    "max_attempts": 2,
    "circuit_failure_threshold": 100,
}
BAR = {"1. open": "1.0", "2. high": "2.0", "3. low": "0.5", "4. close": "1.5", "5. volume": "100"}


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://svc:{PASSWORD}@")


def _routes(server: RecordedServer) -> dict[str, str]:
    """One ticker per way a request can fail, each answer quoting the secrets back: ticker -> expected kind."""
    echo = f"{_with_password(server.url)}/query?function=TIME_SERIES_DAILY&symbol=X&apikey={API_KEY}"
    av = {
        "ERRMSG": (Reply.json(json.dumps({"Error Message": f"Invalid API call. Retry {echo}"})), "unknown_ticker"),
        "NOTE": (
            Reply.json(json.dumps({"Note": f"We have detected your API key as {API_KEY}: 5 calls per minute."})),
            "quota",
        ),
        "INFO": (Reply.json(json.dumps({"Information": f"This endpoint moved; you asked for {echo}"})), "bad_response"),
        "ECHO": (Reply.json(json.dumps({"Meta Data": {}, echo: "who called"})), "bad_response"),
        "BADDATE": (Reply.json(json.dumps({"Time Series (Daily)": {echo: BAR}})), "bad_response"),
        "BADPRICE": (
            Reply.json(json.dumps({"Time Series (Daily)": {DAY: {**BAR, "1. open": echo}}})),
            "bad_response",
        ),
        "DENIED": (Reply.text(f"forbidden: {echo}", 403), "bad_response"),
        "DOWN": (Reply.text("down", 503, reason=f"Unavailable for apikey={API_KEY}"), "transient"),
        "HTML": (Reply.text(f"{echo} <html>gateway error</html>", 200, content_type="text/html"), "bad_response"),
        "RESET": (Reply(reset=True), "transient"),
    }
    yahoo = {
        "YNOTFOUND": (
            Reply.json(
                json.dumps({"chart": {"result": None, "error": {"code": "Not Found", "description": echo}}}), 404
            ),
            "unknown_ticker",
        ),
        "YCHARTERR": (
            Reply.json(json.dumps({"chart": {"result": None, "error": {"code": "Bad", "description": echo}}})),
            "bad_response",
        ),
        "YNODATA": (Reply.text(f"no data for {echo}", 400), "unknown_ticker"),
    }
    for ticker, (reply, _) in av.items():
        server.route("/query", reply, symbol=ticker)
    for ticker, (reply, _) in yahoo.items():
        server.route(f"/v8/finance/chart/{ticker}", reply)
    return {ticker: kind for ticker, (_, kind) in {**av, **yahoo}.items()}


def run_failing_providers(tmp_path) -> dict:
    """Both HTTP providers' assets materialized against a server whose every answer is a failure quoting secrets."""
    server = RecordedServer().start()
    try:
        expected = _routes(server)
        av = AlphaVantageProvider(
            api_key=API_KEY,
            base_url=_with_password(server.url),
            tickers=[t for t in expected if not t.startswith("Y")],
            requests_per_day=None,
            **FAST,
        )
        yahoo = YahooProvider(
            base_url=_with_password(server.url), tickers=[t for t in expected if t.startswith("Y")], **FAST
        )
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            [raw_bars_alphavantage, raw_bars_yahoo],
            resources={"alphavantage_provider": av, "yahoo_provider": yahoo, "lake": LakeResource(url=str(tmp_path))},
            instance=instance,
            partition_key=DAY,
        )
        hits = list(server.hits)
    finally:
        server.stop()
    return {"result": result, "instance": instance, "expected": expected, "hits": hits, "lake": Lake(str(tmp_path))}


def _dead_letters(lake: Lake) -> pd.DataFrame:
    frames = [lake.read_range("raw", f"dead_letter_{name}", DAY, DAY) for name in ("alphavantage", "yahoo")]
    return pd.concat(frames, ignore_index=True).set_index("ticker")


def test_planted_secrets_reach_no_log_metadata_or_dead_letter(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)  # httpx logs each request's URL at INFO, httpcore its traffic at DEBUG
    failed_run = run_failing_providers(tmp_path)
    result, expected = failed_run["result"], failed_run["expected"]
    assert result.success
    # the secrets were in play: every Alpha Vantage request carried the key, every request the password
    queries = [hit.query for hit in failed_run["hits"] if hit.path == "/query"]
    assert queries and all(q["apikey"] == API_KEY for q in queries)
    assert all(hit.headers.get("authorization", "").startswith("Basic ") for hit in failed_run["hits"])

    dead = _dead_letters(failed_run["lake"])
    assert dead["kind"].to_dict() == expected  # each ticker failed, in the way planted for it
    metadata = {
        name: {k: str(v.value) for k, v in result.asset_materializations_for_node(name)[0].metadata.items()}
        for name in ("raw_bars_alphavantage", "raw_bars_yahoo")
    }
    assert metadata["raw_bars_alphavantage"]["failed_tickers"] == str(len(expected) - 3)
    run_id = result.run_id
    event_log = "\n".join(dg.serialize_value(entry) for entry in failed_run["instance"].all_logs(run_id))
    captured = capfd.readouterr()
    places = {
        "dead-letter table": dead.to_csv(),
        "materialization metadata": json.dumps(metadata),
        "Dagster event log": event_log,
        "Python logs": caplog.text,
        "stdout/stderr": captured.out + captured.err,
    }
    for place, text in places.items():
        for secret in (API_KEY, PASSWORD):
            assert secret not in text, f"{secret} leaked into the {place}"

    # the reasons still say what happened, with the secret masked where it was quoted
    reasons = dead["reason"].to_dict()
    assert "no 'Time Series (Daily)' in the body" in reasons["ECHO"] and "apikey=***" in reasons["ECHO"]
    assert "API key as ***" in reasons["NOTE"]
    assert "svc:***@" in reasons["YNOTFOUND"] and "HTTP 503" in reasons["DOWN"]
    assert "apikey=***" in reasons["BADDATE"] and "apikey=***" in reasons["BADPRICE"]
    assert "HTTP Request: GET" in caplog.text  # httpx's own request lines were captured, and masked


# --- the redaction rules themselves --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("redis://:S3cretPW@redis:6379/0 is unavailable", "redis://:***@redis:6379/0 is unavailable"),
        ("postgresql+psycopg2://dagster:pw@db:5432/dagster", "postgresql+psycopg2://dagster:***@db:5432/dagster"),
        ("GET /query?function=F&apikey=K123&symbol=IBM", "GET /query?function=F&apikey=***&symbol=IBM"),
        ('{"apikey": "K123", "token":"t0k"}', '{"apikey": "***", "token":"***"}'),
        ("We have detected your API key as K123 and our", "We have detected your API key as *** and our"),
        (
            "no 'Time Series (Daily)' in the body (keys: ['Meta Data'])",
            "no 'Time Series (Daily)' in the body (keys: ['Meta Data'])",
        ),
        ("monkey=1&turkey=2", "monkey=1&turkey=2"),
    ],
)
def test_redact_masks_secrets_and_keeps_the_rest(text, expected):
    assert redact(text) == expected


def test_secrets_in_a_configured_url_are_masked_where_quoted_alone():
    url = "https://svc:PW-1@gateway/av?apikey=K123"
    assert secrets_in(url) == ["PW-1", "K123"] and redact_url(url) == "https://svc:***@gateway/av?apikey=***"
    assert redact("the gateway refused K123 for svc/PW-1", secrets_in(url)) == "the gateway refused *** for svc/***"


def test_a_redacted_logger_masks_its_records_for_every_handler(caplog):
    redact_loggers("stockpred.test.redaction")
    with caplog.at_level(logging.INFO):
        logging.getLogger("stockpred.test.redaction").info("GET %s", f"http://h/q?apikey={API_KEY}")
    assert caplog.messages == ["GET http://h/q?apikey=***"]
