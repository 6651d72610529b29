"""Simulated provider through the `raw_bars_simulated` asset: rows/s and peak memory, beside the bare simulation.

    .venv/bin/python benchmarks/ingest_simulated.py

Each case runs in a fresh process (peak RSS is per process): the asset materialized as one run into a temporary
lake, and the reference, the same bars from `simulate_market` alone. The ratio is the asset's time over the
reference's: what Dagster, the incremental bookkeeping and the Parquet partitions cost on top of making the data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

CASES = [
    ("10,000 tickers x 1 session", 10_000, "2025-06-02", "2025-06-02"),
    ("500 tickers x 2 years", 500, "2023-06-01", "2025-05-30"),
]

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
mode, size, start, end, lake = sys.argv[1:6]
began = time.perf_counter()
if mode == "reference":
    from stockpred_core.data.simulation import simulate_market
    rows = len(simulate_market(7, int(size), start, end)[0])
else:
    import dagster as dg
    from stockpred_assets.ingestion.assets import raw_bars_simulated
    from stockpred_resources.lake import LakeResource
    from stockpred_resources.providers import SimulatedProvider
    began = time.perf_counter()
    result = dg.materialize(
        [raw_bars_simulated], instance=dg.DagsterInstance.ephemeral(),
        resources={"simulated_provider": SimulatedProvider(universe_size=int(size)), "lake": LakeResource(url=lake)},
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    # One MaterializeResult covers the whole range: each partition's event carries the run's total row count.
    last = result.asset_materializations_for_node("raw_bars_simulated")[-1]
    rows = last.metadata["dagster/row_count"].value
seconds = time.perf_counter() - began
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))
"""


def measure(mode: str, size: int, start: str, end: str) -> dict:
    with tempfile.TemporaryDirectory() as lake:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(size), start, end, lake], capture_output=True, text=True, check=True
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print(
        f"{'case':<28} {'rows':>9} {'asset s':>8} {'rows/s':>9} {'peak MB':>8} | {'reference s':>11} {'peak MB':>8} | "
        f"{'ratio':>6}"
    )
    for label, size, start, end in CASES:
        asset, reference = measure("asset", size, start, end), measure("reference", size, start, end)
        print(
            f"{label:<28} {asset['rows']:>9,} {asset['seconds']:>8.2f} {asset['rows'] / asset['seconds']:>9,.0f} "
            f"{asset['peak_mb']:>8.0f} | {reference['seconds']:>11.2f} {reference['peak_mb']:>8.0f} | "
            f"{asset['seconds'] / reference['seconds']:>5.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
