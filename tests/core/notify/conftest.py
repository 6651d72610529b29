"""Real local servers for the notification tests: an SMTP server (tests/support/smtp_server.py) and the recorded HTTP
server (tests/support/recorded_server.py) taught to answer POSTs and to record their bodies."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from support.recorded_server import Hit, RecordedServer
from support.smtp_server import SmtpServer


@dataclass(frozen=True)
class PostHit(Hit):
    method: str = "GET"
    body: bytes = b""


class PostServer(RecordedServer):
    """The recorded server, answering POSTs with the same routes and recording each body (`PostHit`)."""

    def __init__(self) -> None:
        self._local = threading.local()
        super().__init__()

    def _dispatch(self, hit: Hit):
        body = getattr(self._local, "body", None)
        hit = PostHit(hit.path, hit.query, hit.headers, "POST" if body is not None else "GET", body or b"")
        self._local.body = None
        return super()._dispatch(hit)

    def posts(self, path: str) -> list[PostHit]:
        return [h for h in self.hits if h.path == path and isinstance(h, PostHit) and h.method == "POST"]

    def _handler_class(self):
        base = super()._handler_class()
        server = self

        class Handler(base):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                server._local.body = self.rfile.read(length)
                self.do_GET()

        return Handler


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def http_server():
    server = PostServer().start()
    yield server
    server.stop()
