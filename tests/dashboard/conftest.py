"""A world of 500 simulated tickers in a lake and the session's redis-server (its database 9), the dashboard served on
a free port, and headless Chromium."""

from __future__ import annotations

import shutil

import pytest

from dashboard.app import create_app
from dashboard.auth import Keys
from dashboard.harness import CHROMEDRIVER, browser, build_world, serve

TICKERS = 500


@pytest.fixture(scope="session")
def world(tmp_path_factory, redis_url):
    return build_world(tmp_path_factory.mktemp("dashboard"), redis_url.rsplit("/", 1)[0] + "/9", n_tickers=TICKERS)


@pytest.fixture(scope="session")
def dashboard_url(world):
    with serve(create_app(world.data(), Keys({}))) as url:
        yield url


@pytest.fixture(scope="session")
def chromium():
    if shutil.which("chromium") is None or not shutil.os.path.exists(CHROMEDRIVER):
        pytest.skip("Chromium is not installed: scripts/ensure-test-services.sh installs chromium and chromium-driver")
    driver = browser()
    yield driver
    driver.quit()
