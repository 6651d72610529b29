"""The whole S&P 500 file (619,040 rows, 505 tickers, 2013-2018) through the daily assets, beside a plain pandas read.

    .venv/bin/python benchmarks/sp500_pipeline.py

Each stage is one run over the file's whole range, in a fresh process (peak RSS is per process), into one temporary
lake: `raw_bars_files` (read the file, one request per ticker, write raw partitions), `validated_bars` (read them,
schema and anomaly rules, write bars, quarantine, events and flags), `features` (read bars and events with the
look-back, adjust, compute every feature, write the feature partitions). The reference is `pandas.read_csv`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market" / "all_stocks_5yr.csv.gz"
RANGE = {"dagster/asset_partition_range_start": "2013-02-08", "dagster/asset_partition_range_end": "2018-02-07"}

CHILD = r"""
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
mode, data, lake, tags = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
began = time.perf_counter()
rows = None
if mode == "reference":
    import pandas as pd
    rows = len(pd.read_csv(data))
else:
    import dagster as dg
    from stockpred_assets.features.assets import features
    from stockpred_assets.ingestion.assets import raw_bars_files
    from stockpred_assets.validation.assets import validated_bars
    from stockpred_resources.lake import DuckDBResource, LakeResource
    from stockpred_resources.market_data import MarketDataResource
    from stockpred_resources.providers import FilesProvider
    resources = {"files_provider": FilesProvider(path=data), "lake": LakeResource(url=lake + "/lake"),
                 "duckdb": DuckDBResource(database=lake + "/catalog.duckdb"),
                 "market_data": MarketDataResource(providers=["files"])}
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    asset = {"ingest": raw_bars_files, "validate": validated_bars, "features": features}[mode]
    began = time.perf_counter()
    result = dg.materialize([asset], resources=resources, tags=tags, run_config=quiet,
                            instance=dg.DagsterInstance.ephemeral())
    meta = result.asset_materializations_for_node(asset.key.path[-1])[-1].metadata
    rows = meta["rows_in"].value if mode == "validate" else meta["dagster/row_count"].value
seconds = time.perf_counter() - began
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))
"""


def measure(mode: str, lake: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(DATA), lake, json.dumps(RANGE)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if not DATA.is_file():
        sys.exit(f"{DATA} not found: the benchmark reads ../shared/data")
    with tempfile.TemporaryDirectory() as lake:
        stages = [
            (label, measure(mode, lake))
            for label, mode in (("raw_bars_files", "ingest"), ("validated_bars", "validate"), ("features", "features"))
        ]
    reference = measure("reference", "")
    header = f"{'run (whole file, one run each)':<34} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'peak MB':>8}"
    print(f"{header} {'vs read_csv':>12}")
    for label, m in [*stages, ("pandas.read_csv (reference)", reference)]:
        print(
            f"{label:<34} {m['rows']:>9,} {m['seconds']:>8.2f} {m['rows'] / m['seconds']:>10,.0f} "
            f"{m['peak_mb']:>8.0f} {m['seconds'] / reference['seconds']:>11.1f}x"
        )


if __name__ == "__main__":
    main()
