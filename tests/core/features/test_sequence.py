"""The last 30 sessions' price/volume path per row (seq30): values from the bars directly, point in time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockpred_core.data.simulation import simulate_bars
from stockpred_core.features import sequence


def test_each_row_holds_its_last_30_sessions_scaled_by_the_day():
    bars = simulate_bars(5, 3, "2022-01-03", "2022-06-30")
    bars["adj_close"] = bars["close"] * 0.98  # a dividend factor: open/high/low are scaled by it too
    table = sequence.sequence_table(bars).set_index(["date", "ticker"])
    assert list(table.columns) == sequence.SEQUENCE_COLUMNS and len(sequence.SEQUENCE_COLUMNS) == 150
    one = bars[bars["ticker"] == bars["ticker"].iloc[0]].sort_values("date").reset_index(drop=True)
    i, ticker = 40, one["ticker"].iloc[0]
    row = table.loc[(one["date"].iloc[i], ticker)]
    for k in (0, 1, 29):
        assert np.isclose(row[f"seq_close_{k}"], np.log(one["adj_close"][i - k] / one["adj_close"][i]), atol=1e-12)
        high = one["high"][i - k] * 0.98
        assert np.isclose(row[f"seq_high_{k}"], np.log(high / one["adj_close"][i]), atol=1e-12)
        volume = np.log((one["volume"][i - k] + 1) / (one["volume"][i] + 1))
        assert np.isclose(row[f"seq_volume_{k}"], volume, atol=1e-12)
    early = table.loc[(one["date"].iloc[3], ticker)]
    assert np.isclose(early["seq_close_3"], np.log(one["adj_close"][0] / one["adj_close"][3]), atol=1e-12)
    assert np.isnan(early["seq_close_4"])  # before the ticker's first session
    # point in time: later bars, even corrupted, change nothing up to the day
    day = one["date"].iloc[i]
    later = bars["date"] > day
    corrupted = pd.concat([bars[~later], bars[later].assign(close=1.0, adj_close=1.0, volume=0.0)])
    again = sequence.sequence_table(corrupted).set_index(["date", "ticker"])
    pd.testing.assert_frame_equal(again.loc[:day], table.loc[:day])
