"""The intraday path: sources of intraday bars -> Redis Streams -> workers that keep per-ticker state and refresh
features and predictions. A long-running process beside the batch graph, on the pure core (it imports neither
Dagster nor the Dagster packages of this project)."""
