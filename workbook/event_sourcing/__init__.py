"""Event sourcing: an append-only event store with expected-version checks and snapshots.

``event_store`` holds the in-memory and SQLite stores. Chapter 3 introduces it; chapter 4
builds aggregates and projections on it.
"""

from workbook.event_sourcing.event_store import (ConcurrencyConflict, ExpectedVersionFromFuture, InMemoryEventStore,
                                                 NewEvent)

__all__ = ["ConcurrencyConflict", "ExpectedVersionFromFuture", "InMemoryEventStore", "NewEvent"]
