"""The last 30 sessions of each ticker's bars as one row, for sequence models (Qlib's Alpha360 idea: the raw price and
volume path, scaled by the day's own close and volume, with 30 sessions and no VWAP here).

Columns `seq_<field>_<k>` for field in close, open, high, low, volume and k = 0 (day D) .. 29 (29 sessions before):
log(price[D - k] / close[D]) on prices adjusted by each day's adj_close / close, and log((volume[D - k] + 1) /
(volume[D] + 1)). A row reads bars dated D or earlier only (30 sessions of them): no recursion, so a daily run equals
a backfill. A ticker's first 29 sessions have NaN for the sessions it did not trade yet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SESSIONS = 30
FIELDS = ("close", "open", "high", "low", "volume")
FAMILY = "seq30"  # its name among a recipe's feature families
SEQUENCE_COLUMNS: list[str] = [f"seq_{field}_{k}" for field in FIELDS for k in range(SESSIONS)]
BAR_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")


def sequence_table(bars: pd.DataFrame) -> pd.DataFrame:
    """The long (date, ticker, *SEQUENCE_COLUMNS) table of daily bars (open, high, low, close, adj_close, volume;
    split-adjusted), one row per bar."""
    if bars.empty:
        return pd.DataFrame(columns=["date", "ticker", *SEQUENCE_COLUMNS])
    wide = {col: bars.pivot(index="date", columns="ticker", values=col).sort_index() for col in BAR_FIELDS}
    factor = (wide["adj_close"] / wide["close"]).to_numpy(dtype=float)
    close = wide["adj_close"].to_numpy(dtype=float)
    paths = {
        "close": close,
        "open": wide["open"].to_numpy(dtype=float) * factor,
        "high": wide["high"].to_numpy(dtype=float) * factor,
        "low": wide["low"].to_numpy(dtype=float) * factor,
    }
    volume = np.log1p(wide["volume"].to_numpy(dtype=float))
    log_close = np.log(close)
    present = ~np.isnan(close.ravel())
    columns = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for field in FIELDS:
            level = volume if field == "volume" else np.log(paths[field])
            today = volume if field == "volume" else log_close
            for k in range(SESSIONS):
                lagged = np.full_like(level, np.nan)
                lagged[k:] = level[: len(level) - k]
                columns.append((lagged - today).ravel()[present])
    matrix = np.column_stack(columns)
    matrix[~np.isfinite(matrix)] = np.nan
    dates, tickers = wide["close"].index, wide["close"].columns
    long = pd.DataFrame(matrix, columns=SEQUENCE_COLUMNS)
    long.insert(0, "ticker", np.tile(tickers.to_numpy(), len(dates))[present])
    long.insert(0, "date", np.repeat(dates.to_numpy(), len(tickers))[present])
    return long
