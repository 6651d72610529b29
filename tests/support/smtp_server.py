"""A real local SMTP server in a thread (the standard library's `smtpd`, deprecated but still in Python 3.11;
aiosmtpd is not a dependency): it captures every message it accepts and answers scripted SMTP errors on demand."""

from __future__ import annotations

import email
import email.policy
import threading
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore
    import smtpd


class SmtpServer(smtpd.SMTPServer):
    """On 127.0.0.1 (`port`); `messages` are the accepted messages (parsed), `envelopes` their (from, recipients);
    `fail_next` holds SMTP replies (e.g. "451 4.3.0 try later") answered to the next messages instead."""

    def __init__(self) -> None:
        self._map: dict = {}
        super().__init__(("127.0.0.1", 0), None, decode_data=False, map=self._map)
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail_next: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
        if self.fail_next:
            return self.fail_next.pop(0)
        self.messages.append(email.message_from_bytes(data, policy=email.policy.default))
        self.envelopes.append((mailfrom, list(rcpttos)))
        return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            asyncore.loop(timeout=0.05, count=1, map=self._map)

    def start(self) -> SmtpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.close()
