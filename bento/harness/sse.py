"""Reading Server-Sent Events (GET /events) as a client does, for the benchmarks that measure push."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str | None, str | None, str, float]]:
    """Each event of a streamed SSE response: (event name, id, data, the time its data line was read). Comments
    (`: ping`) are skipped."""
    event = entry = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            entry = line[4:]
        elif line.startswith("data: "):
            yield event, entry, line[6:], time.time()
        elif not line:
            event = entry = None
