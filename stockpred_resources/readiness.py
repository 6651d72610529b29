"""Waiting for a server this process started: poll a URL until it answers 200, the server exits or time runs out."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, interval: float = 0.3) -> bool:
    """True once GET `url` answers 200; False when `proc` has exited or `timeout` seconds have passed first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval)
