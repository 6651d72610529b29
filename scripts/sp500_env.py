"""The environment the real-data scripts run the platform in: the S&P 500 file through the files provider."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MARKET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "market"


def use_sp500_file(data_dir: str) -> None:
    """Point the settings at the S&P 500 file (files provider, ^GSPC as the index, the real VIX) and `data_dir`."""
    if not (MARKET / "all_stocks_5yr.csv.gz").is_file():
        sys.exit(f"{MARKET} not found: the real-data scripts read ../shared/data")
    os.environ.update(
        {
            "STOCKPRED_DATA_DIR": data_dir,
            "STOCKPRED_PROVIDERS": "files",
            "STOCKPRED_FILES_PATH": str(MARKET / "all_stocks_5yr.csv.gz"),
            "STOCKPRED_INDEX_FILE": str(MARKET / "GSPC.csv"),
            "STOCKPRED_VIX_FILE": str(MARKET / "VIX_History.csv"),
        }
    )
