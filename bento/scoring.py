"""The model call: feature rows in, cacheable answers (JSON bytes) out, off the event loop and batched."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stockpred_core.serving.answers import score
from stockpred_core.serving.model import ServedModel
from stockpred_core.serving.rows import FeatureRow

SMALL_REQUEST = 64  # rows; smaller requests are batched with concurrent ones, larger ones run as they are
MAX_MODEL_BATCH = 512  # rows per batched call on the CPU, where a call's time grows with its rows
# on a GPU a call is bound by launching its kernels until thousands of rows: batch many more requests per call
MAX_GPU_BATCH = 8192


def max_batch(served: ServedModel) -> int:
    return MAX_GPU_BATCH if served.device.startswith("cuda") else MAX_MODEL_BATCH


@dataclass
class _Job:
    served: ServedModel
    rows: list[FeatureRow]
    explain: bool
    future: asyncio.Future


class ModelRunner:
    """Runs the model off the event loop. Small requests that arrive while the model is busy are scored together in
    one call (more rows per call, fewer calls), and concurrent misses for the same answer compute it once."""

    def __init__(self, threads: int = 2, on_batch=None) -> None:
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="stockpred-model")
        self._slots = asyncio.Semaphore(threads)
        self._queue: asyncio.Queue[_Job] | None = None
        self._inflight: dict[tuple, asyncio.Future] = {}
        self.on_batch = on_batch
        self._tasks: set[asyncio.Task] = set()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._spawn(self._batches())

    async def run(self, served: ServedModel, rows: list[FeatureRow], explain: bool) -> list[bytes]:
        loop = asyncio.get_running_loop()
        if len(rows) >= SMALL_REQUEST or self._queue is None:
            if self.on_batch:
                self.on_batch(len(rows))
            return await loop.run_in_executor(self.executor, score, served, rows, explain)
        results: list[asyncio.Future] = []
        fresh: list[FeatureRow] = []
        own: list[asyncio.Future] = []
        for row in rows:
            key = (served.version, row.ticker, row.date, explain)
            future = self._inflight.get(key)
            if future is None:
                future = self._inflight[key] = loop.create_future()
                future.add_done_callback(lambda _f, k=key: self._inflight.pop(k, None))
                fresh.append(row)
                own.append(future)
            results.append(future)
        if fresh:
            batch: asyncio.Future = loop.create_future()
            batch.add_done_callback(lambda b: _settle(b, own))
            self._queue.put_nowait(_Job(served, fresh, explain, batch))
        # shielded: a request cancelled (its client left, a timeout) must not cancel a future others wait on too
        return list(await asyncio.gather(*(asyncio.shield(f) for f in results)))

    async def _batches(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            size, limit = len(jobs[0].rows), max_batch(jobs[0].served)
            while size < limit and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                size += len(jobs[-1].rows)
            await self._slots.acquire()
            self._spawn(self._score(jobs))

    async def _score(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            groups: dict[tuple, list[_Job]] = {}
            for job in jobs:
                groups.setdefault((id(job.served), job.explain), []).append(job)
            for group in groups.values():
                rows = [row for job in group for row in job.rows]
                if self.on_batch:
                    self.on_batch(len(rows))
                try:
                    docs = await loop.run_in_executor(self.executor, score, group[0].served, rows, group[0].explain)
                except Exception as exc:
                    for job in group:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                start = 0
                for job in group:
                    if not job.future.done():
                        job.future.set_result(docs[start : start + len(job.rows)])
                    start += len(job.rows)
        finally:
            self._slots.release()


def _settle(batch: asyncio.Future, futures: list[asyncio.Future]) -> None:
    error = batch.exception()
    for i, future in enumerate(futures):
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(batch.result()[i])
