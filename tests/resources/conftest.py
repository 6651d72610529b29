"""Fixtures of the provider tests: a real local HTTP server replaying recorded responses (faults injected per test),
the recordings' folder, and factories of Yahoo and Alpha Vantage providers pointed at that server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from provider_recordings import API_KEY, FAST, MakeAlphaVantage, MakeYahoo
from support.recorded_server import RecordedServer

from stockpred_resources.providers.alphavantage import AlphaVantageProvider
from stockpred_resources.providers.yahoo import YahooProvider


@pytest.fixture(scope="module")
def recorded_server():
    server = RecordedServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(recorded_server: RecordedServer) -> RecordedServer:
    recorded_server.reset()
    return recorded_server


@pytest.fixture(scope="module")
def providers_dir(shared_data: Path) -> Path:
    return shared_data / "providers"


@pytest.fixture
def yahoo(server: RecordedServer) -> Iterator[MakeYahoo]:
    """A factory of Yahoo providers pointed at the server, with fast retries; their clients are closed after."""
    made: list[YahooProvider] = []

    def make(**config) -> YahooProvider:
        made.append(YahooProvider(base_url=server.url, **{"max_attempts": 3, "timeout_s": 2.0, **FAST, **config}))
        return made[-1]

    yield make
    for provider in made:
        provider.close_http()


@pytest.fixture
def alphavantage(server: RecordedServer) -> Iterator[MakeAlphaVantage]:
    made: list[AlphaVantageProvider] = []

    def make(**config) -> AlphaVantageProvider:
        config = {"max_attempts": 3, "requests_per_day": None, **FAST, **config}
        made.append(AlphaVantageProvider(api_key=API_KEY, base_url=server.url, **config))
        return made[-1]

    yield make
    for provider in made:
        provider.close_http()
