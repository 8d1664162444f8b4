"""Background tasks stopped the same way everywhere.

A registry's eviction loop, a health checker, a resolver's watch, a replica's poller: each
runs as a task and is stopped by cancelling it and waiting until it has finished, so
nothing it does outlives ``stop()``. The task's own ``CancelledError`` is expected and
swallowed; a cancellation of the *caller* while it waits is not (``cancelling()``, 3.11+),
so ``await x.stop()`` inside a task that is itself being cancelled still ends that task.
"""

from __future__ import annotations

import asyncio


async def stop_task(task: asyncio.Future | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished; its cancellation is not an error."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we were cancelled while waiting: pass it on
