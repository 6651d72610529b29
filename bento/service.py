"""The stockpred prediction service: the champion model from the MLflow registry behind HTTP."""

from __future__ import annotations

import logging

import bentoml
from starlette.responses import JSONResponse

from bento.predictor import NoModel, Predictor, UnknownTicker
from bento.schemas import Prediction
from stockpred_resources.settings import load_settings

logger = logging.getLogger("bentoml.stockpred")


def error_response(status: int, message: str) -> JSONResponse:
    # BentoML hides the message of 5xx exceptions and wraps 4xx ones in a list; clients get {"error": ...} either way.
    return JSONResponse({"error": message}, status_code=status)


@bentoml.service(name="stockpred", workers=1, traffic={"timeout": 30}, resources={"cpu": "1"})
class StockPredictor:
    """POST /predict {"ticker": ...}; /readyz answers 503 until a champion model and its features are loaded."""

    def __init__(self) -> None:
        self.predictor = Predictor(load_settings())
        self.__is_ready__()

    def __is_ready__(self) -> bool:
        try:
            return self.predictor.refresh()
        except NoModel as exc:  # a champion the online features cannot serve: not ready, and say why
            logger.warning("not ready: %s", exc)
            return False

    @bentoml.api(route="/predict")
    def predict(self, ticker: str) -> Prediction:
        try:
            return self.predictor.predict(ticker)
        except UnknownTicker as exc:
            return error_response(404, str(exc))
        except NoModel as exc:
            return error_response(503, str(exc))
