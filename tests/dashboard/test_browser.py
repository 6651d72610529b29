"""The dashboard in headless Chromium on a world of 500 tickers: every page draws its charts with data, a
subscription made with the form lands in Redis, new alerts and refreshed predictions appear without a reload.
Screenshots of each page go to data/screenshots/dashboard/ (the path is printed). No timed assertions: the
timings are benchmarks/dashboard.py's."""

from __future__ import annotations

import pytest
import redis
from selenium.webdriver.common.by import By
from support import ROOT

from dashboard.harness import open_page, publish_alert, publish_predictions, time_until_text, wait_until
from stockpred_core.alerts import read_subscriptions

SCREENSHOTS = ROOT / "data" / "screenshots" / "dashboard"
PAGES = {"signals": ("/", 1), "ticker": ("/ticker", 2), "health": ("/health", 2), "backtest": ("/backtest", 3),
         "alerts": ("/alerts", 1)}  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_draws_its_charts_with_data(name, chromium, dashboard_url):
    path, charts = PAGES[name]
    open_page(chromium, dashboard_url + path, charts)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    chromium.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_the_signals_table_lists_the_universe(chromium, dashboard_url):
    open_page(chromium, dashboard_url + "/")
    status = wait_until(lambda: chromium.find_element(By.ID, "signals-status").text)
    assert status.startswith("500 tickers")
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#signals-table tbody tr")) > 10


def test_a_subscription_made_with_the_form_lands_in_redis(chromium, dashboard_url, world):
    open_page(chromium, dashboard_url + "/alerts")
    for field, value in {"sub-subscriber": "desk-browser", "sub-tickers": "T0001, T0002",
                         "sub-rules": "above 0.03; bottom_n 5", "sub-cooldown": "120"}.items():  # fmt: skip
        box = chromium.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    chromium.find_element(By.ID, "sub-save").click()
    client = redis.Redis.from_url(world.redis_url)

    def saved():
        return [s for s in read_subscriptions(client) if s.subscriber == "desk-browser"]

    (subscription,) = wait_until(saved)
    assert subscription.tickers == ("T0001", "T0002") and subscription.cooldown_s == 120
    assert [r.name for r in subscription.rules] == ["above 0.03", "bottom_n 5"]
    wait_until(lambda: "desk-browser" in chromium.find_element(By.ID, "sub-table").text)


def test_a_new_alert_appears_without_reload(chromium, dashboard_url, world):
    open_page(chromium, dashboard_url + "/alerts")
    client = redis.Redis.from_url(world.redis_url)
    time_until_text(chromium, "#alerts-feed", "T0499", lambda: publish_alert(client, "T0499", "above 0.09"))


def test_refreshed_predictions_appear_without_reload(chromium, dashboard_url, world):
    open_page(chromium, dashboard_url + "/")
    client = redis.Redis.from_url(world.redis_url)
    time_until_text(chromium, "#signals-table", "T0321", lambda: publish_predictions(client, ["T0321"], 0.9))
