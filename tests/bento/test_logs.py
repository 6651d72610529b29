"""BentoML's record of a refused body becomes one INFO line without a traceback; a server error keeps its record."""

import logging

import pytest
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from bento.logs import BENTOML_HTTP_LOGGER, quiet_client_errors


class Body(BaseModel):
    ticker: str


def log_failure(exc: Exception) -> None:
    """What BentoML's `log_exception` does inside its handler's `except`."""
    try:
        raise exc
    except Exception:
        logging.getLogger(BENTOML_HTTP_LOGGER).error("Exception on %s [%s]", "/predict", "POST", exc_info=True)


def test_client_errors_are_one_line_and_server_errors_keep_their_traceback(caplog):
    quiet_client_errors()
    quiet_client_errors()  # once only
    assert len(logging.getLogger(BENTOML_HTTP_LOGGER).filters) == 1
    with pytest.raises(ValidationError) as invalid:
        Body.model_validate({"symbol": "X"})
    with caplog.at_level(logging.INFO, logger=BENTOML_HTTP_LOGGER):
        log_failure(invalid.value)
        log_failure(ClientDisconnect())
        log_failure(RuntimeError("boom"))
    quiet, gone, failed = caplog.records
    assert (quiet.levelname, quiet.getMessage()) == ("INFO", "400 POST /predict: invalid body (ticker: Field required)")
    assert quiet.exc_info is None and caplog.text.count("Traceback") == 1  # the server error's only
    assert (gone.levelname, gone.getMessage()) == ("INFO", "POST /predict: the client left before sending its body")
    assert failed.levelname == "ERROR" and failed.exc_info[0] is RuntimeError
