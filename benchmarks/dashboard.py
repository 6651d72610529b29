"""The dashboard in headless Chromium on a world of 500 tickers: first load and update latency, beside a reference.

    .venv/bin/python benchmarks/dashboard.py [--tickers 500] [--repeat 5]

First load: from the navigation's start to the page's charts drawn with data (`performance.now()` then), per page
(the browser cache warm, as for a returning analyst). Update latency: from an XADD to the events stream (an alert;
refreshed predictions for a ticker) to its row shown on the open page, through the dashboard's polling (POLL_MS,
250 ms). The reference is the floor the browser and the server set: a bare page served by the same Flask server that
loads the same plotly.js and draws one bar chart (first load), and polls a route returning the events stream's
newest id with `fetch` at the same interval (update). Prints the median and the worst of --repeat runs.
Needs redis-server, chromium and chromium-driver (scripts/ensure-test-services.sh).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import plotly
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard.app import POLL_MS, create_app  # noqa: E402
from dashboard.harness import (  # noqa: E402
    browser,
    build_world,
    open_page,
    publish_alert,
    publish_predictions,
    serve,
    start_redis,
    time_until_text,
    wait_until,
)  # fmt: skip
from stockpred_core.io.stream_events import EVENTS_KEY  # noqa: E402

PAGES = {"signals": ("/", 1), "ticker": ("/ticker", 2), "health": ("/health", 2), "backtest": ("/backtest", 3),
         "alerts": ("/alerts", 1)}  # fmt: skip
REFERENCE = f"""<!doctype html><script src="/reference/plotly.js"></script><div id="chart"></div><div id="ref"></div>
<script>
Plotly.newPlot('chart', [{{type: 'bar', x: [...Array(40).keys()], y: [...Array(40).keys()]}}]);
setInterval(async () => {{
  document.getElementById('ref').innerText = await (await fetch('/reference/latest')).text();
}}, {POLL_MS});
</script>"""


def add_reference(app, client: redis.Redis) -> None:
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    server = app.server
    server.add_url_rule("/reference", "reference", lambda: REFERENCE)
    server.add_url_rule("/reference/plotly.js", "reference_js", lambda: (plotly_js.read_bytes(), 200, {
        "Content-Type": "application/javascript", "Cache-Control": "max-age=3600"}))  # fmt: skip
    latest = lambda: (client.xrevrange(EVENTS_KEY, count=1) or [(b"-", {})])[0][0].decode()  # noqa: E731
    server.add_url_rule("/reference/latest", "reference_latest", latest)


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):7.0f} ms   worst {max(values):7.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_redis(Path(tmp))
        try:
            world = build_world(Path(tmp), url, n_tickers=args.tickers)
            client = redis.Redis.from_url(url)
            app = create_app(world.data())
            add_reference(app, client)
            driver = browser()
            with serve(app) as base:
                run(driver, base, client, args.repeat, args.tickers)
            driver.quit()
        finally:
            proc.kill()


def run(driver, base: str, client: redis.Redis, repeat: int, tickers: int) -> None:
    for path, charts in [("/reference", 1), *PAGES.values()]:
        open_page(driver, base + path, charts)  # warm: the server's caches and the browser's
    print(f"first load, {tickers} tickers (navigation start -> charts drawn with data), {repeat} runs")
    print(f"  {'reference':10s} {summary([open_page(driver, base + '/reference') for _ in range(repeat)])}")
    for name, (path, charts) in PAGES.items():
        print(f"  {name:10s} {summary([open_page(driver, base + path, charts) for _ in range(repeat)])}")
    print(f"update latency (XADD -> shown on the open page, {POLL_MS} ms polling), {repeat} runs")
    open_page(driver, base + "/reference")
    ref = [_ref_once(driver, client) for _ in range(repeat)]
    print(f"  {'reference':10s} {summary(ref)}")
    open_page(driver, base + "/alerts")
    alerts = [
        time_until_text(
            driver, "#alerts-feed", f"B{i:03d}X", lambda i=i: publish_alert(client, f"B{i:03d}X", "above 0.05")
        )
        for i in range(repeat)
    ]
    print(f"  {'alert':10s} {summary(alerts)}")
    open_page(driver, base + "/")
    signals = [
        time_until_text(
            driver, "#signals-table", f"L{i:03d}X", lambda i=i: publish_predictions(client, [f"L{i:03d}X"], 1.0 + i)
        )
        for i in range(repeat)
    ]
    print(f"  {'prediction':10s} {summary(signals)}")


def _ref_once(driver, client: redis.Redis) -> float:
    """One reference update: the newest id shown by the bare page's fetch polling."""
    start = time.perf_counter()
    entry = publish_alert(client, "T0001", "above 0.05")
    script = "return document.getElementById('ref').innerText === arguments[0]"
    wait_until(lambda: driver.execute_script(script, entry), 30.0, every_s=0.005)
    return (time.perf_counter() - start) * 1000.0


if __name__ == "__main__":
    main()
