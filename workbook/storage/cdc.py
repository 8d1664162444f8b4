"""Change data capture: the committed changes of a service's database, in commit order.

``Repository`` (with ``capture_changes=True``) has SQLite triggers append every insert,
update and delete of a record to its ``changes`` table inside the writing transaction.
So the feed holds a change if and only if the write committed, numbered ``seq`` 1, 2, ...
without gaps in commit order (a rolled-back write leaves no row and consumes no number:
the AUTOINCREMENT counter is itself part of the transaction). Unlike a dual write
("save, then publish"), no crash between the two can lose or invent a change.

A consumer remembers the last ``seq`` it applied and asks for the changes after it; the
feed is re-readable, so a consumer that crashes simply asks again (see ``replica``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workbook.core.params import check_int
from workbook.storage.repository import Repository


@dataclass(frozen=True)
class Change:
    seq: int
    record_id: str
    op: str                      # "insert", "update" or "delete"
    version: int                 # the record's version after the change
    data: dict[str, Any] | None  # None for a delete
    at: float                    # commit time on the source's clock


class ChangeFeed:
    """Reads a repository's captured changes."""

    def __init__(self, repository: Repository):
        if not isinstance(repository, Repository):
            raise TypeError(f"ChangeFeed: repository must be a Repository, got {type(repository).__name__}")
        if not repository.capture_changes:
            raise ValueError(f"ChangeFeed: repository {repository.service!r} was opened with capture_changes=False, "
                             "so it records no changes")
        self.repository = repository

    @property
    def service(self) -> str:
        return self.repository.service

    def read(self, after: int = 0, limit: int | None = None) -> list[Change]:
        """Changes with seq > ``after``, in order (at most ``limit``)."""
        after = check_int("after", after, minimum=0)
        if limit is not None:
            check_int("limit", limit, minimum=0)
        rows = self.repository.conn.execute(
            "SELECT seq, record_id, op, version, data, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, -1 if limit is None else limit)).fetchall()
        return [Change(s, r, op, v, None if d is None else json.loads(d), at) for s, r, op, v, d, at in rows]

    def head(self) -> int:
        """The seq of the last committed change (0 when none)."""
        return self.repository.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
