"""The audit log: one JSON line per request (and per shadow-scored row), never a secret.

Each line is one `os.write` on a descriptor opened with O_APPEND, so the lines of several workers never interleave,
and no logging machinery sits on the hot path.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import orjson


class AuditSink:
    def __init__(self, destination: str = "-") -> None:
        self.destination = destination
        if destination == "-":
            self.fd = 2
        else:
            self.fd = os.open(destination, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(self, event: dict) -> None:
        try:
            os.write(self.fd, orjson.dumps(event) + b"\n")
        except OSError:  # a full disk must not fail requests; the metrics still count them
            pass


def request_line(scope: dict, audit: dict, status: int, elapsed: float) -> dict:
    """The audit line of one API request: who, what, the status the client saw, how long; never a secret."""
    client = scope.get("client")
    line = {
        "event": "request",
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "key_id": audit.get("key_id"),
        "role": audit.get("role"),
        "method": audit["method"],
        "route": audit["route"],
        "status": status,
        "latency_ms": round(elapsed * 1000, 3),
        "client": client[0] if client else None,
    }
    for name in ("auth", "subject", "variant", "canary_fallback", "ticker", "tickers", "cached", "model_version"):
        if name in audit:
            line[name] = audit[name]
    return line
