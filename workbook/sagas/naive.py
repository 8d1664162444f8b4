"""The article's saga orchestrator, rebuilt (not copied) only to show its defect live.

``NaiveSaga``: on a failed step it schedules the compensations without awaiting them,
swallows their errors, and reports ``compensated`` straight away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class NaiveSaga:
    def __init__(self, steps: list[tuple[str, Callable, Callable]], trace: list | None = None):
        self.steps = steps
        self.trace = trace if trace is not None else []
        self.status = "running"

    async def run(self, saga_id: str) -> str:
        loop = asyncio.get_running_loop()
        done = []
        for name, action, compensation in self.steps:
            self.trace.append((loop.time(), "orchestrator", name, f"{name} ({saga_id})"))
            try:
                await action(saga_id, {})
            except Exception as exc:  # noqa: BLE001
                self.trace.append((loop.time(), name, "orchestrator", f"{type(exc).__name__} ({saga_id})"))
                for prev, _, comp in reversed(done):
                    self.trace.append((loop.time(), "orchestrator", prev, f"undo {prev} ({saga_id})"))
                    task = asyncio.ensure_future(comp(saga_id, {}))  # fire and forget
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # errors swallowed
                self.status = "compensated"  # without waiting for a single compensation
                return self.status
            self.trace.append((loop.time(), name, "orchestrator", f"ok ({saga_id})"))
            done.append((name, action, compensation))
        self.status = "completed"
        return self.status
