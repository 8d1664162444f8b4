"""Open-loop load generation: requests arrive on schedule whether or not earlier ones finished.

Real traffic is open-loop (users do not wait for each other), which is why queues build
and tails grow; a closed loop (send, wait, send) hides both. ``open_loop`` starts one
task per arrival and waits for all of them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from workbook.core.clock import LoopClock
from workbook.core.params import check_number


async def open_loop(
    send: Callable[[int], Awaitable[Any]],
    *,
    rate: float,
    duration: float,
    rng: random.Random | None = None,
    clock=None,
) -> list[Any]:
    """Call ``send(i)`` for arrivals at ``rate`` per second over ``duration`` seconds.

    With ``rng`` the inter-arrival times are exponential (a Poisson process); without
    it they are constant (1/rate). Returns the results in arrival order; an exception
    from ``send`` is returned in place of its result, not raised.
    """
    rate = check_number("rate", rate, minimum=0, min_exclusive=True)
    duration = check_number("duration", duration, minimum=0)
    clock = clock or LoopClock()
    start = clock.now()
    tasks: list[asyncio.Task] = []
    next_at, i = 0.0, 0
    while next_at < duration:
        delay = start + next_at - clock.now()
        if delay > 0:
            await clock.sleep(delay)
        tasks.append(asyncio.ensure_future(send(i)))
        i += 1
        # i / rate, not a running sum of 1 / rate: ten sums of 0.1 are 0.9999999999999999,
        # which would squeeze an 11th arrival into one second at 10/s
        next_at = next_at + rng.expovariate(rate) if rng is not None else i / rate
    return list(await asyncio.gather(*tasks, return_exceptions=True))
