"""Pure computation shared by the Dagster assets, training and the prediction service.

Nothing in this package imports Dagster (a test asserts it), so features, labels and models have one
implementation wherever they run.
"""
