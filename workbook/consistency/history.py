"""Histories of operations on a register: invocations and completions with real times.

An ``Operation`` is one client call: who made it (``process``), what it was (``kind``
"read" or "write"), its ``value`` (the value written, or the value a read returned), when
it was invoked and when it completed. ``complete=None`` means the call never returned (a
timeout, a crash): a pending write may or may not have taken effect, a pending read
returned nothing anyone saw. Operation *a* precedes *b* in real time when
``a.complete < b.invoke``; otherwise they are concurrent.

``History`` records them as a system runs: ``h = history.invoke(p, "write", 3)`` then
``history.complete(h)`` (or ``history.complete(h, value)`` for a read).

In virtual time two events often share an instant: a client's read completes at t and
the next read, which the test started *after* seeing the first one return, is invoked at
the same t. ``History`` numbers every invocation and completion as it records them
(``invoke_seq``, ``complete_seq``) and the checker compares ``(time, seq)``, so the
order in which things really happened breaks ties. Hand-written operations have seq 0:
equal times are then concurrent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from workbook.core.errors import ParameterError

KINDS = ("read", "write")


@dataclass(frozen=True)
class Operation:
    process: Any
    kind: str
    value: Any
    invoke: float
    complete: float | None = None
    invoke_seq: int = 0
    complete_seq: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ParameterError("kind", self.kind, "'read' or 'write'")
        if self.complete is not None and self.complete < self.invoke:
            raise ParameterError("complete", self.complete, f"a time >= invoke ({self.invoke})")

    @property
    def pending(self) -> bool:
        return self.complete is None

    def __str__(self) -> str:
        end = "pending" if self.complete is None else f"{self.complete:.6g}"
        what = f"write({self.value!r})" if self.kind == "write" else f"read -> {self.value!r}"
        return f"{self.process}: {what} [{self.invoke:.6g}, {end}]"


class History:
    """Records operations as they are invoked and completed."""

    def __init__(self):
        self.operations: list[Operation] = []
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def invoke(self, process: Any, kind: str, value: Any, at: float) -> int:
        self.operations.append(Operation(process, kind, value, at, invoke_seq=self._next()))
        return len(self.operations) - 1

    def complete(self, handle: int, at: float, value: Any = None) -> Operation:
        op = self.operations[handle]
        if not op.pending:
            raise ParameterError("handle", handle, "an operation that has not completed yet")
        done = replace(op, complete=at, value=value if op.kind == "read" else op.value, complete_seq=self._next())
        self.operations[handle] = done
        return done

    def completed(self) -> list[Operation]:
        return [op for op in self.operations if not op.pending or op.kind == "write"]

    def __len__(self) -> int:
        return len(self.operations)

    def __iter__(self):
        return iter(self.operations)
