"""Dagster resources (lake, DuckDB, MLflow, Redis, market-data providers, monitoring), built on stockpred_core."""
