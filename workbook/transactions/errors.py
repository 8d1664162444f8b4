"""Errors of the transactions package."""

from __future__ import annotations

from workbook.core.errors import WorkbookError


class TransactionError(WorkbookError):
    """Base class of the transactions package's errors."""


class Crash(TransactionError, RuntimeError):
    """Injected: the process dies at ``point`` (its memory is lost; its SQLite database survives)."""

    def __init__(self, point: str):
        self.point = point
        super().__init__(f"crash injected at {point!r}")


class UnknownTransaction(TransactionError, LookupError):
    """A participant was told to commit a transaction it never prepared: a protocol violation."""
