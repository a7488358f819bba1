"""Scoring off the event loop, optionally with micro-batching of concurrent requests.

Scoring (`Router.probabilities`: P(adequate) per model and the score) is CPU-bound
(tokenise + onnxruntime), so it runs in worker threads and the event loop keeps accepting
connections and streaming proxied responses. At most `workers` scoring calls
run at once (the rest wait in line, first come first served), so each call gets a core instead
of all of them sharing every core.

With batching on (`batch_max` > 1), requests that arrive while scoring calls are running queue
up and are scored together in the next call: no request waits for a timer. Whether that pays
depends on the router: bench/load.py measures it. For MiniLM-sized routers it does not (a
single prompt is already a large enough matrix product, and a batch pads every prompt to the
longest), and with the int8 model a prompt's score then depends slightly on which prompts share
its batch (dynamic quantisation scales each batch as a whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from confroute.serve.metrics import Metrics

Job = tuple[list[str], "asyncio.Future[np.ndarray]"]


class Scorer:
    """Awaitable scoring of validated texts: `score(texts)` returns one row per text (what
    `function` returns for it), from `function` run in worker threads."""

    def __init__(self, function: Callable[[list[str]], np.ndarray], metrics: Metrics,
                 batch_max: int = 1, workers: int = 1):
        self.function = function
        self.metrics = metrics
        self.batch_max = batch_max
        self.workers = workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Job] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._limiter: anyio.CapacityLimiter | None = None

    async def score(self, texts: list[str]) -> np.ndarray:
        queue = self._ensure_started()
        if self.batch_max <= 1:
            return await self._run(texts)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        queue.put_nowait((texts, future))
        return await future

    async def close(self) -> None:
        """Stop the workers; requests still queued fail instead of hanging."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("the server is shutting down"))
        self._tasks, self._queue, self._loop, self._limiter = [], None, None, None

    def _ensure_started(self) -> asyncio.Queue[Job]:
        # Started lazily in the running loop, so the app works whether or not its lifespan ran
        # (a fresh loop, as a test client may bring, gets fresh workers).
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:
            self._loop, self._queue = loop, asyncio.Queue()
            self._limiter = anyio.CapacityLimiter(self.workers)
            if self.batch_max > 1:
                self._tasks = [loop.create_task(self._work(self._queue))
                               for _ in range(self.workers)]
        return self._queue

    async def _work(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            jobs = [await queue.get()]
            count = len(jobs[0][0])
            while count < self.batch_max and not queue.empty():
                jobs.append(queue.get_nowait())
                count += len(jobs[-1][0])
            live = [(texts, future) for texts, future in jobs if not future.cancelled()]
            if live:
                await self._serve(live)

    async def _serve(self, jobs: list[Job]) -> None:
        try:
            scores = await self._run([t for texts, _ in jobs for t in texts])
        except Exception as exc:  # hand the failure to each waiting request, keep the worker
            for _, future in jobs:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for texts, future in jobs:
            if not future.done():
                future.set_result(scores[start:start + len(texts)])
            start += len(texts)

    async def _run(self, texts: list[str]) -> Any:
        started = time.perf_counter()
        scores = await anyio.to_thread.run_sync(self.function, texts, limiter=self._limiter)
        self.metrics.scoring.observe(time.perf_counter() - started)
        self.metrics.batch.observe(len(texts))
        return scores
