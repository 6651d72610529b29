"""Servers this process started: poll a URL until it answers 200 (the server exits or time runs out first), and stop
one started in its own process group."""

from __future__ import annotations

import os
import signal
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


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group of `proc` (started with start_new_session=True), SIGKILL it if it outlives
    `timeout` seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
