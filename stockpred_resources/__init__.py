"""Dagster resources (lake, DuckDB, MLflow, Redis, market-data providers) and the settings they are built from.

`settings`, `storage` and `registry` import no Dagster, so the prediction service uses them too.
"""
