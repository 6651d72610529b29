"""The stockpred Dagster code location (see definitions.py) and its pure core (core/)."""
