"""The order aggregate: commands check invariants and emit events; state is a fold of events.

An aggregate is a consistency boundary: every command is decided against its current
state and either refused (``InvariantViolation``, naming the rule) or turned into events;
the state changes only by applying events (``evolve``), so replaying the stream rebuilds
exactly the state the commands saw. Invariants of the order:

* it is placed once, with at least one item, each with ``qty >= 1`` and a price >= 0;
* items can be added only while it is ``placed`` (not after payment, shipping or
  cancellation);
* payment must be for exactly the total, once; it ships only when paid, once;
* it can be cancelled unless shipped (cancelling twice is refused too).

``OrderRepository`` loads an order from the event store through the upcaster (old event
shapes load), from the latest snapshot plus the events after it (``load``) or from the
first event (``load_from_scratch``); both give the same state (a property test checks
it). ``save`` appends the new events with the version the order was loaded at, so a
concurrent change raises the store's ``ConcurrencyConflict``; with ``snapshot_every=k``
it snapshots whenever the version crosses a multiple of k.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from workbook.core.errors import ParameterError, WorkbookError
from workbook.event_sourcing.event_store import EventStore, NewEvent, RecordedEvent
from workbook.event_sourcing.upcasting import Upcaster, UnknownEventType, order_upcaster

STATUSES = ("new", "placed", "paid", "shipped", "cancelled")


class InvariantViolation(WorkbookError, ValueError):
    """A command refused because it would break a rule of the aggregate."""

    def __init__(self, order_id: str, rule: str):
        self.order_id, self.rule = order_id, rule
        super().__init__(f"order {order_id!r}: {rule}")


class OrderNotFound(WorkbookError, LookupError):
    """No events for this order id."""

    def __init__(self, order_id: str):
        self.order_id = order_id
        super().__init__(f"order {order_id!r} does not exist (its stream has no events)")


def initial_state(order_id: str) -> dict[str, Any]:
    return {"id": order_id, "status": "new", "customer_id": None, "items": [], "total_cents": 0, "paid_cents": 0}


def evolve(state: dict[str, Any], event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The state after one event (current shape); a new dict, the old one untouched."""
    s = copy.deepcopy(state)
    if event_type == "OrderPlaced":
        s.update(status="placed", customer_id=data["customer_id"], items=[dict(i) for i in data["items"]])
    elif event_type == "ItemAdded":
        s["items"].append({"sku": data["sku"], "qty": data["qty"], "unit_price_cents": data["unit_price_cents"]})
    elif event_type == "OrderPaid":
        s.update(status="paid", paid_cents=data["amount_cents"])
    elif event_type == "OrderShipped":
        s["status"] = "shipped"
    elif event_type == "OrderCancelled":
        s.update(status="cancelled", cancel_reason=data.get("reason", ""))
    else:
        raise UnknownEventType(event_type, ("OrderPlaced", "ItemAdded", "OrderPaid", "OrderShipped", "OrderCancelled"))
    s["total_cents"] = sum(i["qty"] * i["unit_price_cents"] for i in s["items"])
    return s


@dataclass
class Order:
    """An order as loaded: its state, the version it was loaded at, and the events not yet saved."""

    id: str
    state: dict[str, Any]
    version: int = 0
    pending: list[NewEvent] = field(default_factory=list)
    upcaster: Upcaster = field(default_factory=order_upcaster, repr=False)

    @property
    def status(self) -> str:
        return self.state["status"]

    def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        self.state = evolve(self.state, event_type, data)
        self.pending.append(NewEvent(event_type, data, self.upcaster.metadata(event_type)))

    def _refuse(self, rule: str):
        raise InvariantViolation(self.id, rule)

    # -- commands -------------------------------------------------------------------------
    def place(self, customer_id: str, items: list[dict[str, Any]]) -> None:
        if self.status != "new":
            self._refuse(f"is already {self.status}; an order is placed once")
        if not isinstance(customer_id, str) or not customer_id:
            raise ParameterError("customer_id", customer_id, "a non-empty string")
        if not isinstance(items, list) or not items:
            self._refuse("must be placed with at least one item")
        self._emit("OrderPlaced", {"customer_id": customer_id, "items": [_item(self.id, i) for i in items]})

    def add_item(self, sku: str, qty: int, unit_price_cents: int) -> None:
        if self.status != "placed":
            self._refuse(f"items can be added only while placed, not {self.status}")
        self._emit("ItemAdded", _item(self.id, {"sku": sku, "qty": qty, "unit_price_cents": unit_price_cents}))

    def pay(self, amount_cents: int) -> None:
        if self.status != "placed":
            self._refuse(f"can be paid only while placed, not {self.status}")
        if amount_cents != self.state["total_cents"]:
            self._refuse(f"payment of {amount_cents} does not match the total {self.state['total_cents']}")
        self._emit("OrderPaid", {"amount_cents": amount_cents})

    def ship(self) -> None:
        if self.status != "paid":
            self._refuse(f"ships only when paid, not {self.status}")
        self._emit("OrderShipped", {})

    def cancel(self, reason: str = "") -> None:
        if self.status in ("new", "shipped", "cancelled"):
            self._refuse(f"cannot be cancelled when {self.status}")
        self._emit("OrderCancelled", {"reason": reason})


def _item(order_id: str, item) -> dict[str, Any]:
    if not isinstance(item, dict) or not {"sku", "qty", "unit_price_cents"} <= set(item):
        raise ParameterError("items", item, "dicts with sku, qty and unit_price_cents")
    qty, price = item["qty"], item["unit_price_cents"]
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
        raise InvariantViolation(order_id, f"item {item['sku']!r}: qty must be an integer >= 1, got {qty!r}")
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise InvariantViolation(order_id, f"item {item['sku']!r}: unit_price_cents must be an integer >= 0, "
                                           f"got {price!r}")
    return {"sku": str(item["sku"]), "qty": qty, "unit_price_cents": price}


class OrderRepository:
    """Orders in an event store, one stream per order (``order-<id>``)."""

    def __init__(self, store: EventStore, *, upcaster: Upcaster | None = None, snapshot_every: int | None = None):
        if not isinstance(store, EventStore):
            raise ParameterError("store", store, "an EventStore")
        if snapshot_every is not None and (isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int)
                                           or snapshot_every < 1):
            raise ParameterError("snapshot_every", snapshot_every, "None or an integer >= 1")
        self.store, self.snapshot_every = store, snapshot_every
        self.upcaster = upcaster or order_upcaster()

    @staticmethod
    def stream(order_id: str) -> str:
        return f"order-{order_id}"

    def fold(self, state: dict[str, Any], event: RecordedEvent) -> dict[str, Any]:
        current = self.upcaster.upcast(event)
        return evolve(state, current.type, current.data)

    def create(self, order_id: str) -> Order:
        if not isinstance(order_id, str) or not order_id:
            raise ParameterError("order_id", order_id, "a non-empty string")
        if self.store.version(self.stream(order_id)):
            raise InvariantViolation(order_id, "already exists")
        return Order(order_id, initial_state(order_id), 0, [], self.upcaster)

    def load(self, order_id: str) -> Order:
        """From the latest snapshot plus the events after it."""
        state, version = self.store.load(self.stream(order_id), self.fold, initial_state(order_id))
        return self._loaded(order_id, state, version)

    def load_from_scratch(self, order_id: str) -> Order:
        """From the first event, ignoring snapshots."""
        state, version = initial_state(order_id), 0
        for ev in self.store.read(self.stream(order_id)):
            state, version = self.fold(state, ev), ev.version
        return self._loaded(order_id, state, version)

    def _loaded(self, order_id, state, version) -> Order:
        if version == 0:
            raise OrderNotFound(order_id)
        return Order(order_id, state, version, [], self.upcaster)

    def save(self, order: Order) -> int:
        """Append the order's new events at the version it was loaded at; the new version."""
        if not order.pending:
            return order.version
        stream = self.stream(order.id)
        new_version = self.store.append(stream, order.pending, expected_version=order.version)
        if self.snapshot_every and new_version // self.snapshot_every > order.version // self.snapshot_every:
            self.store.save_snapshot(stream, new_version, order.state)
        order.version, order.pending = new_version, []
        return new_version
