"""Technical indicators and the feature frame built from them, and the catalog of feature columns."""
