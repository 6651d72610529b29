"""Masking credentials in text that leaves the process: logs, Dagster metadata, dead letters, HTTP answers.

Pure functions and a logging filter, no imports beyond the standard library, so the service, the providers and the
assets share them.
A URL keeps what helps an operator (scheme, user, host, port, path, parameter names) and loses what authenticates:
the password of its userinfo and the values of secret-looking query parameters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"

# scheme://[user]:password@ -> scheme://[user]:***@ (redis://:pw@host, postgresql://u:pw@host, https://u:pw@host)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#]*:)(?P<secret>[^\s@/?#]+)(?=@)")
# apikey=..., api_key=..., token=..., password=..., secret=..., access_token=..., signature=... in a query or a
# message (`key=value` after ?, & or a word boundary) or a JSON/dict body ("apikey": "..."), up to the next separator
_PARAM = re.compile(
    r"(?P<head>(?:^|(?<=[?&;,\s\"'{(]))(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|password|passwd|pwd"
    r"|secret|client[_-]?secret|signature|x-amz-signature|x-amz-credential|sig|key)[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<secret>[^\s&;,\"'})]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?P<secret>[A-Za-z0-9._~+/=\-]{8,})", re.IGNORECASE)
# a key quoted in prose, as Alpha Vantage's rate-limit notes do ("We have detected your API key as XXXX and ...")
_PROSE_KEY = re.compile(r"(?P<head>\bAPI[ _-]?key as\s+)(?P<secret>[^\s,;]+)", re.IGNORECASE)
_PATTERNS = (_USERINFO, _PARAM, _BEARER, _PROSE_KEY)


def redact_url(url: str | None) -> str | None:
    """`url` with its password and secret query values masked (None stays None)."""
    if url is None:
        return None
    return redact(url)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with URL passwords, secret-looking parameters, bearer tokens and every given secret masked."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m["head"] + MASK, text)
    return text


def secrets_in(text: str | None) -> list[str]:
    """The secret values `redact` would mask in `text` (a configured URL's password, its API key parameter), so a
    component configured with that URL can also mask them where they are quoted alone."""
    if not text:
        return []
    return [m["secret"] for pattern in _PATTERNS for m in pattern.finditer(text) if m["secret"] != MASK]


class RedactingFilter(logging.Filter):
    """Masks secrets in every record of the logger it is attached to (e.g. httpx, which logs each request's URL)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.secrets), None
        return True


def redact_loggers(*names: str) -> None:
    """Attach a RedactingFilter to each named logger (once): their records reach every handler already masked. A
    logger's filters do not apply to its children's records, so each logger that writes is named."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
