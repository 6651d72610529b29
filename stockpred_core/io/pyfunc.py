"""The MLflow "model from code" every logged forecaster points at: MLflow runs this file when it loads a version.

Logging the class by path (rather than a pickled object) means no pickled code travels with the model: the
artifact is the directory `Forecaster.save` wrote, read back by `load_model`.
"""

import mlflow
import pandas as pd

from stockpred_core.models.families import load_model


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """Any core Forecaster as an MLflow pyfunc; `forecaster` is the loaded core model."""

    def load_context(self, context) -> None:
        self.forecaster = load_model(context.artifacts["forecaster"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.forecaster.predict(model_input).to_numpy()


mlflow.models.set_model(ForecasterModel())
