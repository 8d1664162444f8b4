"""Read-your-writes by session version: read a replica only when it has caught up.

A client writes to the primary and reads from a replica to spread the load; right after
a write the replica may not have the change yet, and the client sees its own write
vanish (a stale read). A ``Session`` remembers the change ``seq`` of the client's last
write. ``ReadYourWrites.get`` reads the replica
when ``replica.applied_seq >= session.seen`` and otherwise the primary: the client never
sees older data than it has already written or seen, and the primary serves only those
reads that would have been stale. ``enabled=False`` always reads the replica, for
comparison; ``reads`` counts where each read went.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from workbook.storage.repository import Record, Repository
from workbook.storage.replica import Replica


@dataclass
class Session:
    """One client's consistency token: the change seq of its latest write."""

    seen: int = 0


class ReadYourWrites:
    def __init__(self, primary: Repository, replica: Replica, *, enabled: bool = True):
        if not isinstance(primary, Repository) or not primary.capture_changes:
            raise ValueError("ReadYourWrites: primary must be a Repository with capture_changes=True "
                             "(the session version is a change seq)")
        if not isinstance(replica, Replica):
            raise TypeError(f"ReadYourWrites: replica must be a Replica, got {type(replica).__name__}")
        self.primary, self.replica, self.enabled = primary, replica, enabled
        self.reads: Counter = Counter()

    def save(self, session: Session, record_id: str, data: dict[str, Any], *, expected_version: int) -> Record:
        record = self.primary.save(record_id, data, expected_version=expected_version)
        session.seen = max(session.seen, self.primary.last_seq)
        return record

    def delete(self, session: Session, record_id: str, *, expected_version: int) -> None:
        self.primary.delete(record_id, expected_version=expected_version)
        session.seen = max(session.seen, self.primary.last_seq)

    def get(self, session: Session, record_id: str) -> Record | None:
        if not self.enabled or self.replica.applied_seq >= session.seen:
            self.reads["replica"] += 1
            return self.replica.get(record_id)
        self.reads["primary"] += 1
        return self.primary.get(record_id)
