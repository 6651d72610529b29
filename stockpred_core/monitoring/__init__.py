"""Feature drift and model decay against the champion's training window.

No Dagster here. `statistics` has PSI and KS over fixed bins and the trailing-window counts; `reference` fits the bins,
KS grid and ordinary range of each feature once per champion; `daily_drift` measures each day's window against it and
classifies the features; `performance` follows the champion's live rank IC and error; `freshness` the data's lag and
coverage; `verdict` holds the statuses, the thresholds and the day's verdict.
"""
