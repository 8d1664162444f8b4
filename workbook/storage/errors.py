"""Errors of the storage package: each names the record and what was expected."""

from __future__ import annotations

from workbook.core.errors import WorkbookError


class StorageError(WorkbookError):
    """Base class of the storage package's errors."""


class StaleVersion(StorageError, ValueError):
    """A save or delete based on a version someone else has since replaced: reload, decide again, retry."""

    def __init__(self, service: str, record_id: str, expected: int, actual: int):
        self.service, self.record_id, self.expected, self.actual = service, record_id, expected, actual
        found = "no such record" if actual == 0 else f"the record is at version {actual}"
        super().__init__(f"{service}: record {record_id!r}: expected_version={expected}, but {found}; "
                         "another writer got there first: reload and retry")


class ReplicationGap(StorageError, ValueError):
    """A replica was handed a change that does not follow the last one it applied."""

    def __init__(self, replica: str, applied: int, got: int):
        self.replica, self.applied, self.got = replica, applied, got
        super().__init__(f"replica {replica!r}: change seq {got} does not follow seq {applied} (applied last); "
                         f"changes {applied + 1}..{got - 1} are missing: feed changes in order")
