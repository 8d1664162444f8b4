"""Schema evolution: events written in an old shape still load, through upcasters.

Events are immutable facts: when ``OrderPlaced`` changes shape, the events already in the
store keep the old one. Each event carries its schema version in its metadata
(``metadata["schema_version"]``, 1 when absent). An ``Upcaster`` knows, per event type,
the **current** version and one function per step (``v1 -> v2``, ``v2 -> v3``...); reading
an event applies the steps from its version to the current one, so the aggregate and the
projections only ever see the current shape. The store is never rewritten.

Refusals, each naming the type and version: an event type that was never registered
(``UnknownEventType``), a version above the current one (written by newer code) or
below it with a step missing (``UnknownEventVersion``).

``ORDER_EVENTS`` is the chapter's registry: ``OrderPlaced`` v1 had ``customer`` (a name)
and item prices as float currency units; v2 has ``customer_id`` and integer
``unit_price_cents``. ``upcast_order_placed_v1`` is the step between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from workbook.core.errors import ParameterError, WorkbookError
from workbook.event_sourcing.event_store import RecordedEvent

Step = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventType(WorkbookError, LookupError):
    """An event type nobody registered: the code that reads the store does not know this fact."""

    def __init__(self, event_type: str, known):
        self.event_type = event_type
        super().__init__(f"unknown event type {event_type!r}; known types: {', '.join(sorted(known)) or 'none'}")


class UnknownEventVersion(WorkbookError, LookupError):
    """An event whose schema version cannot be brought to the current one."""

    def __init__(self, event_type: str, version, detail: str):
        self.event_type, self.version = event_type, version
        super().__init__(f"event type {event_type!r}, schema_version {version!r}: {detail}")


class Upcaster:
    """Current schema versions per event type, and the steps from each older version."""

    def __init__(self):
        self.current: dict[str, int] = {}
        self.steps: dict[tuple[str, int], Step] = {}

    def register(self, event_type: str, current_version: int = 1) -> Upcaster:
        if not isinstance(event_type, str) or not event_type:
            raise ParameterError("event_type", event_type, "a non-empty string")
        if isinstance(current_version, bool) or not isinstance(current_version, int) or current_version < 1:
            raise ParameterError("current_version", current_version, "an integer >= 1")
        self.current[event_type] = current_version
        return self

    def step(self, event_type: str, from_version: int, fn: Step) -> Upcaster:
        """``fn`` turns the data of ``from_version`` into the data of ``from_version + 1``."""
        if event_type not in self.current:
            raise UnknownEventType(event_type, self.current)
        if not 1 <= from_version < self.current[event_type]:
            raise ParameterError("from_version", from_version, f"in 1..{self.current[event_type] - 1}")
        self.steps[(event_type, from_version)] = fn
        return self

    def version_of(self, event: RecordedEvent) -> int:
        return event.metadata.get("schema_version", 1)

    def upcast(self, event: RecordedEvent) -> RecordedEvent:
        """The event in its type's current shape (``metadata["schema_version"]`` updated)."""
        if event.type not in self.current:
            raise UnknownEventType(event.type, self.current)
        version, target = self.version_of(event), self.current[event.type]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise UnknownEventVersion(event.type, version, "schema_version must be an integer >= 1")
        if version > target:
            raise UnknownEventVersion(event.type, version, f"newer than this code's version {target}: "
                                                           "deploy the newer reader first")
        data = event.data
        while version < target:
            fn = self.steps.get((event.type, version))
            if fn is None:
                raise UnknownEventVersion(event.type, version, f"no upcaster from v{version} to v{version + 1}")
            data, version = fn(dict(data)), version + 1
        if data is event.data:
            return event
        return replace(event, data=data, metadata={**event.metadata, "schema_version": version})

    def metadata(self, event_type: str) -> dict[str, int]:
        """Metadata for a new event of this type: its current schema version."""
        if event_type not in self.current:
            raise UnknownEventType(event_type, self.current)
        return {"schema_version": self.current[event_type]}


def upcast_order_placed_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 ``{customer, items: [{sku, qty, price}]}`` -> v2 ``{customer_id, items: [{sku, qty, unit_price_cents}]}``."""
    return {"customer_id": data["customer"],
            "items": [{"sku": i["sku"], "qty": i["qty"], "unit_price_cents": round(i["price"] * 100)}
                      for i in data["items"]]}


ORDER_EVENT_VERSIONS = {"OrderPlaced": 2, "ItemAdded": 1, "OrderPaid": 1, "OrderShipped": 1, "OrderCancelled": 1}


def order_upcaster() -> Upcaster:
    """The order's event types at their current versions, with the OrderPlaced v1 -> v2 step."""
    up = Upcaster()
    for event_type, version in ORDER_EVENT_VERSIONS.items():
        up.register(event_type, version)
    return up.step("OrderPlaced", 1, upcast_order_placed_v1)
