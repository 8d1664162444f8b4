"""Event sourcing: an append-only event store with expected-version checks and snapshots.

``event_store`` holds the in-memory and SQLite stores (chapter 3); ``aggregate`` (the order:
commands, invariants, rebuilt from events or snapshot + events), ``projection`` (read
models with a checkpoint in the effect's transaction, rebuilt from zero) and
``upcasting`` (old event shapes brought to the current one) build on it (chapter 4).
"""

from workbook.event_sourcing.event_store import (ConcurrencyConflict, ExpectedVersionFromFuture, InMemoryEventStore,
                                                 NewEvent, SQLiteEventStore)
from workbook.event_sourcing.aggregate import InvariantViolation, Order, OrderNotFound, OrderRepository
from workbook.event_sourcing.projection import OrderSummaryProjection, Projection, ProjectionCrash, ProjectionRunner
from workbook.event_sourcing.upcasting import UnknownEventType, UnknownEventVersion, Upcaster, order_upcaster

__all__ = ["ConcurrencyConflict", "ExpectedVersionFromFuture", "InMemoryEventStore", "NewEvent", "SQLiteEventStore",
           "InvariantViolation", "Order", "OrderNotFound", "OrderRepository",
           "OrderSummaryProjection", "Projection", "ProjectionCrash", "ProjectionRunner",
           "UnknownEventType", "UnknownEventVersion", "Upcaster", "order_upcaster"]
