"""Client errors in the service log as one line each, without a traceback (a logging filter, no patch).

BentoML logs every body it refuses (400, 415, a client that left) at ERROR with its traceback, through the logger of
`bentoml._internal.server.http_app`: 2 KB a request, so 200 invalid bodies wrote 448 KB. The filter turns those
records into one INFO line; server errors keep BentoML's full record.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"  # `log_exception`, which BentoML's API wrapper calls


class QuietClientErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)[:5]
            )
            message = f"400 {_request(record)}: invalid body ({fields})"
        elif isinstance(exc, ClientDisconnect):
            message = f"{_request(record)}: the client left before sending its body"
        elif isinstance(exc, BentoMLException) and exc.error_code.value < 500:
            message = f"{exc.error_code.value} {_request(record)}: {exc}"
        else:
            return True
        record.msg, record.args, record.exc_info, record.exc_text = message, (), None, None
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def _request(record: logging.LogRecord) -> str:
    path, method = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "?")
    return f"{method} {path}"  # BentoML's record: "Exception on %s [%s]" with (path, method)


def quiet_client_errors() -> None:
    """Install the filter (once) on BentoML's HTTP logger; call it in the worker, after BentoML set up logging."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, QuietClientErrors) for f in logger.filters):
        logger.addFilter(QuietClientErrors())
