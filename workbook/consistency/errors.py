"""Errors of the consistency package."""

from __future__ import annotations

from workbook.core.errors import WorkbookError


class ConsistencyError(WorkbookError):
    """Base class of the consistency package's errors."""


class QuorumUnavailable(ConsistencyError, TimeoutError):
    """Fewer than the required replicas answered before the timeout: the outcome is unknown."""

    def __init__(self, op: str, needed: int, got: int, timeout: float):
        self.op, self.needed, self.got = op, needed, got
        super().__init__(f"{op}: {got} of the {needed} replicas needed answered within {timeout:g} s; "
                         "the operation may or may not have taken effect")
