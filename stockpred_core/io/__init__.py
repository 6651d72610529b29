"""Where data and models live: the Parquet lake, the Redis online store, the MLflow model registry."""
