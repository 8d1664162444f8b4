"""Event sourcing: an append-only event store with expected-version checks and snapshots.

``event_store`` holds the in-memory and SQLite stores. Chapter 3 introduces it; chapter 4
builds aggregates and projections on it.
"""

from workbook.event_sourcing.event_store import (ConcurrencyConflict, ExpectedVersionFromFuture, InMemoryEventStore,
                                                 NewEvent)
from workbook.event_sourcing.aggregate import InvariantViolation, Order, OrderNotFound, OrderRepository
from workbook.event_sourcing.projection import OrderSummaryProjection, Projection, ProjectionCrash, ProjectionRunner
from workbook.event_sourcing.upcasting import UnknownEventType, UnknownEventVersion, Upcaster, order_upcaster

__all__ = ["ConcurrencyConflict", "ExpectedVersionFromFuture", "InMemoryEventStore", "NewEvent",
           "InvariantViolation", "Order", "OrderNotFound", "OrderRepository",
           "OrderSummaryProjection", "Projection", "ProjectionCrash", "ProjectionRunner",
           "UnknownEventType", "UnknownEventVersion", "Upcaster", "order_upcaster"]
