"""A semaphore bulkhead: at most ``max_concurrent_calls`` calls at once; callers beyond
wait up to ``max_wait_duration`` seconds for a slot (FIFO), then get ``BulkheadFullError``.

resilience4j's defaults: 25 concurrent calls, no waiting (0). The point: one slow
downstream can hold at most this many of the caller's workers, so the others stay free
for healthy downstreams.

Invariant: ``in_use <= max_concurrent_calls`` at every instant; ``max_in_use`` records the
highest value seen (what the concurrency tests check).

Async callers (``call_async``) share an asyncio semaphore; threads (``call``) share a
threading semaphore, whose waits are real time (a blocked thread cannot wait virtually)
and not strictly FIFO. Use one bulkhead for one kind of caller: the two limits are
counted apart.
"""

from __future__ import annotations

import asyncio
import threading

from workbook.core.params import check_int, check_number
from workbook.resilience.errors import BulkheadFullError


class Bulkhead:
    def __init__(self, max_concurrent_calls: int = 25, max_wait_duration: float = 0.0, *, name: str = "bulkhead"):
        self.name = name
        self.max_concurrent_calls = check_int("max_concurrent_calls", max_concurrent_calls, minimum=1)
        self.max_wait_duration = check_number("max_wait_duration", max_wait_duration, minimum=0)
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None
        self._thread_sem = threading.BoundedSemaphore(self.max_concurrent_calls)
        self._lock = threading.Lock()
        self.in_use = 0
        self.max_in_use = 0
        self.rejected = 0

    def _semaphore(self) -> asyncio.Semaphore:
        """The asyncio semaphore of the running loop. An asyncio primitive binds to the
        first loop that waits on it, so a bulkhead reused by a later loop (a second
        ``run_virtual`` in a notebook) gets a fresh one, unless calls are still in flight
        on the old loop: two loops cannot share one limit."""
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:
            if self._sem is not None and self._sem._value < self.max_concurrent_calls:
                raise RuntimeError(f"bulkhead {self.name!r}: calls are still in flight on another event loop")
            self._sem = asyncio.Semaphore(self.max_concurrent_calls)
            self._sem_loop = loop
        return self._sem

    async def acquire(self) -> None:
        sem = self._semaphore()
        if sem.locked():
            if self.max_wait_duration == 0:
                self._reject()
            try:
                async with asyncio.timeout(self.max_wait_duration):
                    await sem.acquire()
            except TimeoutError:
                self._reject()
        else:
            await sem.acquire()
        self.in_use += 1
        self.max_in_use = max(self.max_in_use, self.in_use)

    def release(self) -> None:
        self.in_use -= 1
        self._sem.release()

    def _reject(self):
        with self._lock:
            self.rejected += 1
        raise BulkheadFullError(self.name, self.max_concurrent_calls, self.max_wait_duration)

    async def call_async(self, fn, *args, **kwargs):
        await self.acquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def call(self, fn, *args, **kwargs):
        """Call ``fn`` from a thread, within the limit; wait up to ``max_wait_duration`` for a slot."""
        sem = self._thread_sem
        if not sem.acquire(blocking=False):
            if self.max_wait_duration == 0 or not sem.acquire(timeout=self.max_wait_duration):
                self._reject()
        with self._lock:
            self.in_use += 1
            self.max_in_use = max(self.max_in_use, self.in_use)
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self.in_use -= 1
            sem.release()
