"""With and without: a bulkhead, and the order of retry and breaker, each measured in virtual time.

* ``bulkhead_comparison(isolated)``: a caller sends half its calls to a healthy
  ``inventory`` and half to ``recommendations``, which turns slow. Without bulkheads both
  share one pool of workers and the slow dependency takes all of them; with one pool per
  dependency (same total size) the healthy one keeps answering.
* ``order_comparison(retry_outside)``: a failing service behind a retry and a breaker.
  Retry outside the breaker (``Pipeline``'s order) asks the breaker before every attempt
  and stops at an open breaker; retry inside the breaker sends every attempt, and the
  breaker sees one outcome per call instead of one per attempt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workbook.core.load import open_loop
from workbook.core.params import check_int, check_number
from workbook.core.stats import quantile
from workbook.core.virtual_time import run_virtual
from workbook.resilience import (Backoff, Bulkhead, BulkheadFullError, CallNotPermittedError, CircuitBreaker,
                                 CircuitBreakerConfig, Pipeline, Retry)


@dataclass
class BulkheadRun:
    label: str
    inventory_ok: int
    inventory_calls: int
    inventory_p99: float
    recommendations_ok: int
    recommendations_calls: int

    @property
    def inventory_availability(self) -> float:
        return self.inventory_ok / self.inventory_calls


def bulkhead_comparison(isolated: bool, *, workers: int = 20, rate: float = 100.0, duration: float = 20.0,
                        slow_from: float = 5.0, slow_latency: float = 5.0, deadline: float = 1.0) -> BulkheadRun:
    """``rate`` calls/s alternate between the two dependencies (20 ms each while healthy);
    from ``slow_from`` s on, ``recommendations`` takes ``slow_latency`` s. A call waits at
    most ``deadline`` s for a worker and for its answer together; a worker stays busy until
    its dependency answers, even when the caller has given up. ``isolated=False``: one
    pool of ``workers``; ``isolated=True``: ``workers // 2`` per dependency."""
    workers = check_int("workers", workers, minimum=2)
    check_number("deadline", deadline, minimum=0, min_exclusive=True)

    async def main():
        loop = asyncio.get_running_loop()
        if isolated:
            pools = {d: Bulkhead(workers // 2, max_wait_duration=deadline, name=d)
                     for d in ("inventory", "recommendations")}
        else:
            shared = Bulkhead(workers, max_wait_duration=deadline, name="shared")
            pools = {"inventory": shared, "recommendations": shared}

        abandoned = []

        async def dependency(name):
            slow = name == "recommendations" and loop.time() >= slow_from
            await asyncio.sleep(slow_latency if slow else 0.02)

        async def one(i):
            name = "inventory" if i % 2 == 0 else "recommendations"
            start = loop.time()
            # the worker stays busy until the dependency answers, even after the caller gave
            # up (a thread blocked in a socket read cannot be cancelled): hence the shield
            work = asyncio.ensure_future(pools[name].call_async(dependency, name))
            abandoned.append(work)
            try:
                await asyncio.wait_for(asyncio.shield(work), deadline)
            except (TimeoutError, BulkheadFullError):
                return name, None
            return name, loop.time() - start

        results = await open_loop(one, rate=rate, duration=duration)
        await asyncio.gather(*abandoned, return_exceptions=True)  # let the abandoned work finish
        inv = [lat for name, lat in results if name == "inventory"]
        rec = [lat for name, lat in results if name == "recommendations"]
        return BulkheadRun("one pool per dependency" if isolated else "one shared pool",
                           sum(1 for x in inv if x is not None), len(inv),
                           quantile([x if x is not None else float("inf") for x in inv], 0.99),
                           sum(1 for x in rec if x is not None), len(rec))

    return run_virtual(main())


@dataclass
class OrderRun:
    label: str
    calls: int
    reached: int
    rejected_fast: int

    @property
    def per_call(self) -> float:
        return self.reached / self.calls


ORDER_BREAKER = CircuitBreakerConfig(sliding_window_size=10, minimum_number_of_calls=10,
                                     wait_duration_in_open_state=5.0, permitted_number_of_calls_in_half_open_state=3)


def order_comparison(retry_outside: bool, *, rate: float = 10.0, duration: float = 30.0, attempts: int = 3,
                     config: CircuitBreakerConfig = ORDER_BREAKER) -> OrderRun:
    """``rate`` calls/s for ``duration`` s to a service that fails every call (a fast 503-like
    ``ConnectionError``), through a 3-attempt retry and a breaker in the given order."""

    async def main():
        reached = [0]

        async def failing():
            reached[0] += 1
            await asyncio.sleep(0.01)
            raise ConnectionError("inventory is down")

        breaker = CircuitBreaker("inventory", config=config)
        retry = Retry(attempts, Backoff(0.1, 2.0, 1.0, "none"))
        if retry_outside:
            pipeline = Pipeline(retry=retry, breaker=breaker)
            call = lambda: pipeline.call_async(failing)  # noqa: E731
        else:
            call = lambda: breaker.call_async(retry.call_async, failing)  # noqa: E731

        async def one(i):
            try:
                await call()
            except CallNotPermittedError:
                return "rejected"
            except ConnectionError:
                return "failed"
            return "ok"

        outcomes = await open_loop(one, rate=rate, duration=duration)
        label = "retry outside the breaker (Pipeline order)" if retry_outside else "retry inside the breaker"
        return OrderRun(label, len(outcomes), reached[0], outcomes.count("rejected"))

    return run_virtual(main())
