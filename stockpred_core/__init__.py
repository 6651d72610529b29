"""The ground floor: pure Python shared by the Dagster code location, the prediction service and the tools.

Sub-packages by layer (Qlib's cut): data (schemas, calendar, simulation, quality), features (indicators, the batch
features), dataset (labels, splits, the training set), models (forecasters, training, tuning, promotion), evaluation
(backtest, portfolio, report), monitoring (drift), io (lake, online store, model registry). It imports neither Dagster
nor BentoML nor any other package of this project (tests/test_import_graph.py).
"""
