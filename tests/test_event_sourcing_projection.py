"""Projections: checkpoint in the same transaction as the effect; crashes at every point; rebuild from zero."""

import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbook.core import ParameterError
from workbook.event_sourcing.aggregate import OrderRepository
from workbook.event_sourcing.event_store import InMemoryEventStore, NewEvent, SQLiteEventStore
from workbook.event_sourcing.projection import OrderSummaryProjection, ProjectionCrash, ProjectionRunner

ITEMS = [{"sku": "book", "qty": 1, "unit_price_cents": 1000}]


def shop_history(store, plan):
    """plan: list of (order id, customer, [commands]); orders placed then driven."""
    repo = OrderRepository(store)
    for oid, customer, commands in plan:
        order = repo.create(oid)
        order.place(customer, ITEMS)
        for c in commands:
            if c == "add":
                order.add_item("pen", 2, 150)
            elif c == "pay":
                order.pay(order.state["total_cents"])
            elif c == "ship":
                order.ship()
            elif c == "cancel":
                order.cancel("no longer needed")
        repo.save(order)
    return repo


PLAN = [("o1", "ada", ["add", "pay", "ship"]), ("o2", "bob", ["pay"]), ("o3", "ada", ["cancel"]),
        ("o4", "cy", ["add", "add", "pay"])]
EXPECTED_CUSTOMERS = {"ada": (2, 1300, 1), "bob": (1, 1000, 0), "cy": (1, 1600, 0)}


def fresh(store):
    r = ProjectionRunner(OrderSummaryProjection(), store)
    r.catch_up()
    return OrderSummaryProjection.customers(r.conn), OrderSummaryProjection.orders(r.conn)


def test_projection_follows_the_store_with_a_checkpoint(tmp_path):
    store = SQLiteEventStore(str(tmp_path / "events.sqlite"))
    shop_history(store, PLAN[:2])
    path = str(tmp_path / "read.sqlite")
    r = ProjectionRunner(OrderSummaryProjection(), store, path)
    assert r.catch_up() == 6 and r.position == 6 and r.lag() == 0
    shop_history(store, PLAN[2:])
    assert r.lag() == 6
    r.close()
    again = ProjectionRunner(OrderSummaryProjection(), store, path)     # a restart continues from the checkpoint
    assert again.catch_up() == 6
    assert OrderSummaryProjection.customers(again.conn) == EXPECTED_CUSTOMERS
    assert OrderSummaryProjection.orders(again.conn)["o1"] == ("ada", "shipped", 1300)


def test_projection_reads_old_event_shapes_through_the_upcaster():
    store = InMemoryEventStore()
    store.append("order-old", [NewEvent("OrderPlaced", {"customer": "ada", "items": [
        {"sku": "a", "qty": 2, "price": 1.25}]})])
    customers, orders = fresh(store)
    assert orders == {"old": ("ada", "placed", 250)} and customers == {"ada": (1, 0, 0)}


def _crash_and_restart(store, path, mode, crash_positions):
    """Run the projection, crashing after each given position once; restart (new runner, same file) each time."""
    pending = set(crash_positions)
    crashes = 0
    while True:
        r = ProjectionRunner(OrderSummaryProjection(), store, path, checkpoint=mode, crash_after=pending)
        try:
            r.catch_up()
        except ProjectionCrash as crash:
            crashes += 1
            pending.discard(crash.position)
            r.close()
            continue
        result = OrderSummaryProjection.customers(r.conn), OrderSummaryProjection.orders(r.conn)
        r.close()
        return result, crashes


def test_a_crash_between_applying_and_checkpointing_at_every_position():
    store = InMemoryEventStore()
    shop_history(store, PLAN)
    expected = fresh(store)
    n = len(store.read_all())
    double_counted = 0
    with tempfile.TemporaryDirectory() as tmp:
        for pos in range(1, n + 1):
            good, crashes = _crash_and_restart(store, os.path.join(tmp, f"atomic{pos}.sqlite"), "atomic", [pos])
            assert crashes == 1 and good == expected, f"atomic checkpoint, crash after position {pos}"
            naive, _ = _crash_and_restart(store, os.path.join(tmp, f"separate{pos}.sqlite"), "separate", [pos])
            double_counted += naive != expected
    # every event that moves a counter or a total is counted twice by the naive checkpoint
    moves = [e for e in store.read_all() if e.type in ("OrderPlaced", "ItemAdded", "OrderPaid", "OrderCancelled")]
    assert double_counted == len(moves) and double_counted >= 10


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ada", "bob"]),
                          st.lists(st.sampled_from(["add", "pay", "ship", "cancel"]), max_size=4)),
                min_size=1, max_size=5),
       st.data())
def test_projection_is_exact_under_any_set_of_crashes(orders, data):
    plan = []
    for i, (customer, commands) in enumerate(orders):
        ok, status = [], "placed"
        for c in commands:   # keep only commands the aggregate accepts
            if (c == "add" and status == "placed") or (c == "pay" and status == "placed") or \
                    (c == "ship" and status == "paid") or (c == "cancel" and status in ("placed", "paid")):
                ok.append(c)
                status = {"pay": "paid", "ship": "shipped", "cancel": "cancelled"}.get(c, status)
        plan.append((f"o{i}", customer, ok))
    store = InMemoryEventStore()
    shop_history(store, plan)
    n = len(store.read_all())
    crashes = data.draw(st.sets(st.integers(1, n), max_size=n))
    with tempfile.TemporaryDirectory() as tmp:
        got, count = _crash_and_restart(store, os.path.join(tmp, "read.sqlite"), "atomic", crashes)
    assert count == len(crashes) and got == fresh(store)


def test_rebuild_from_zero(tmp_path):
    store = InMemoryEventStore()
    shop_history(store, PLAN)
    r = ProjectionRunner(OrderSummaryProjection(), store, str(tmp_path / "read.sqlite"), checkpoint="separate",
                         crash_after=[3])
    with pytest.raises(ProjectionCrash):
        r.catch_up()
    r2 = ProjectionRunner(OrderSummaryProjection(), store, str(tmp_path / "read.sqlite"), checkpoint="separate")
    r2.catch_up()
    assert OrderSummaryProjection.customers(r2.conn) != EXPECTED_CUSTOMERS   # corrupted by the double count
    assert r2.rebuild() == len(store.read_all())
    assert OrderSummaryProjection.customers(r2.conn) == EXPECTED_CUSTOMERS


def test_runner_bad_input():
    with pytest.raises(ParameterError, match="checkpoint"):
        ProjectionRunner(OrderSummaryProjection(), InMemoryEventStore(), checkpoint="sometimes")
    with pytest.raises(ParameterError, match="store"):
        ProjectionRunner(OrderSummaryProjection(), {})


def test_step_applies_one_batch_at_a_time():
    store = InMemoryEventStore()
    shop_history(store, PLAN)
    r = ProjectionRunner(OrderSummaryProjection(), store, batch=5)
    sizes = []
    while events := r.step():
        sizes.append(len(events))
        assert r.position == events[-1].position
    assert sizes == [5, 5, 2] and r.lag() == 0
    assert OrderSummaryProjection.customers(r.conn) == EXPECTED_CUSTOMERS
