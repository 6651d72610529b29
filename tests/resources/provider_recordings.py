"""What the provider tests share (not tests themselves): the recorded responses they replay, the API key they plant,
and the shapes of the provider factories tests/resources/conftest.py hands them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from stockpred_resources.providers.alphavantage import AlphaVantageProvider
from stockpred_resources.providers.yahoo import YahooProvider

API_KEY = "SECRETKEY0123456"
FAST = {"requests_per_minute": 1e6, "backoff_base_s": 0.001, "backoff_max_s": 0.005}
# Quoted identically by public test suites (no recording exists): see ../shared/data/providers/yahoo/SOURCE.txt
V8_NOT_FOUND = json.dumps(
    {"chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}
)
AAPL_CHART = "chart/chart-AAPL-2020-08-31-to-2020-11-07.json"
MSFT_DIVIDENDS = "historical_via_chart/historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
T = pd.Timestamp
MakeYahoo = Callable[..., YahooProvider]
MakeAlphaVantage = Callable[..., AlphaVantageProvider]


def yahoo_body(providers_dir: Path, name: str) -> str:
    """The recorded chart body (the recordings keep it parsed under response.bodyJson)."""
    return json.dumps(json.loads((providers_dir / "yahoo" / name).read_text())["response"]["bodyJson"])


def chart(symbol: str) -> str:
    return f"/v8/finance/chart/{symbol}"
