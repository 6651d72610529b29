"""A real local HTTP server that replays recorded bodies and injects faults (5xx, 429, slowness, resets, bad bodies)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, headers and body, optionally late, or a reset instead of any response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset: bool = False
    content_type: str = "application/json"
    reason: str | None = None  # the status line's reason phrase (the standard one when None)

    @staticmethod
    def json(text: str | bytes, status: int = 200, **kwargs) -> Reply:
        return Reply(status=status, body=text.encode() if isinstance(text, str) else text, **kwargs)

    @staticmethod
    def text(text: str, status: int, content_type: str = "text/plain", **kwargs) -> Reply:
        return Reply(status=status, body=text.encode(), content_type=content_type, **kwargs)


@dataclass(frozen=True)
class Hit:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Route:
    path: str
    query: dict[str, str]
    replies: list[Reply]
    served: int = 0

    def next_reply(self) -> Reply:
        """Replies in order; the last one repeats forever."""
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


class RecordedServer:
    """Routes (path + query subset) to scripted replies on 127.0.0.1, recording every request it receives."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # handlers still sleeping past a client timeout must not block stop()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
            self._routes.clear()

    def route(self, path: str, *replies: Reply, **query: str) -> None:
        """Serve `replies` (in order, the last repeating) to GETs of `path` whose query contains `query`."""
        with self._lock:
            self._routes.insert(0, _Route(path, query, list(replies)))  # newest first: a later route overrides

    def hits_for(self, path: str) -> int:
        return sum(1 for hit in self.hits if hit.path == path)

    def _dispatch(self, hit: Hit) -> Reply:
        with self._lock:
            self.hits.append(hit)
            for route in self._routes:
                if route.path == hit.path and route.query.items() <= hit.query.items():
                    return route.next_reply()
        return Reply.text(f"no route for {hit.path}", 418)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes; don't stall the body

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                hit = Hit(parts.path, dict(parse_qsl(parts.query)), {k.lower(): v for k, v in self.headers.items()})
                reply = server._dispatch(hit)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.reset:
                    # SO_LINGER 0 turns close() into a TCP RST: the client sees a reset, not a clean end of stream.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.rfile.close()
                    self.connection.close()
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status, reply.reason)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    self.close_connection = True  # the client gave up (timeout) before the late reply

            def handle(self) -> None:
                try:
                    super().handle()
                except (OSError, ValueError):
                    pass  # connections we reset on purpose, or the client closed first

            def log_message(self, format: str, *args) -> None:
                pass

        return Handler
