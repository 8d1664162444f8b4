"""One suite for both event stores (in-memory and SQLite): same behaviour, same errors."""

import threading

import pytest

from workbook.core.clock import ManualClock
from workbook.event_sourcing.event_store import (ANY, ConcurrencyConflict, ExpectedVersionFromFuture, InMemoryEventStore,
                                            NewEvent, SQLiteEventStore, WrongExpectedVersion)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    clock = ManualClock(100.0)
    if request.param == "memory":
        yield InMemoryEventStore(clock=clock)
    else:
        s = SQLiteEventStore(str(tmp_path / "events.db"), clock=clock)
        yield s
        s.close()


def placed(n):
    return [NewEvent("ItemAdded", {"sku": f"s{i}", "qty": i}) for i in range(n)]


def test_append_assigns_gapless_versions_and_global_positions(store):
    assert store.version("order-1") == 0
    assert store.append("order-1", placed(2), expected_version=0) == 2
    assert store.append("order-2", [("OrderPlaced", {"total": 5})], expected_version=0) == 1
    assert store.append("order-1", placed(1), expected_version=2) == 3
    evs = store.read("order-1")
    assert [e.version for e in evs] == [1, 2, 3]
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4]
    assert [(e.stream, e.version) for e in store.read_all()] == [("order-1", 1), ("order-1", 2), ("order-2", 1),
                                                                 ("order-1", 3)]
    assert evs[0].type == "ItemAdded" and evs[0].data == {"sku": "s0", "qty": 0} and evs[0].recorded_at == 100.0
    assert store.streams() == ["order-1", "order-2"]


def test_read_from_a_version_and_limit(store):
    store.append("s", placed(5))
    assert [e.version for e in store.read("s", 3)] == [3, 4, 5]
    assert [e.version for e in store.read("s", 2, limit=2)] == [2, 3]
    assert store.read("s", 6) == [] and store.read("missing") == []
    assert [e.position for e in store.read_all(4)] == [4, 5]


def test_conflict_names_stream_and_versions_and_writes_nothing(store):
    store.append("order-7", placed(3))
    with pytest.raises(ConcurrencyConflict) as info:
        store.append("order-7", placed(1), expected_version=1)
    assert str(info.value) == ("stream 'order-7': expected version 1, but the stream is at version 3: "
                               "2 event(s) were appended since; reload and retry")
    assert (info.value.stream, info.value.expected, info.value.actual) == ("order-7", 1, 3)
    assert store.version("order-7") == 3


def test_expected_version_from_the_future_is_its_own_error(store):
    store.append("order-7", placed(2))
    with pytest.raises(ExpectedVersionFromFuture, match="stream 'order-7': expected version 5, but the stream is "
                                                        "at version 2: the caller claims"):
        store.append("order-7", placed(1), expected_version=5)
    with pytest.raises(ExpectedVersionFromFuture):
        store.append("new-stream", placed(1), expected_version=1)
    assert issubclass(ExpectedVersionFromFuture, WrongExpectedVersion)
    assert store.version("new-stream") == 0


def test_any_skips_the_check(store):
    store.append("s", placed(2), expected_version=ANY)
    assert store.append("s", placed(1)) == 3


def test_two_writers_that_read_the_same_version_only_one_wins(store):
    store.append("acct", placed(1))
    seen = store.version("acct")
    store.append("acct", [("Deposited", {"amount": 10})], expected_version=seen)
    with pytest.raises(ConcurrencyConflict):
        store.append("acct", [("Withdrawn", {"amount": 10})], expected_version=seen)
    assert [e.type for e in store.read("acct")] == ["ItemAdded", "Deposited"]


def test_bad_events_are_refused_whole(store):
    with pytest.raises(TypeError, match=r"stream 's': events\[1\].data\['when'\] is not JSON-serialisable"):
        store.append("s", [("A", {}), ("B", {"when": object()})])
    with pytest.raises(ValueError, match=r"events\[0\].type must be a non-empty string"):
        store.append("s", [("", {})])
    with pytest.raises(ValueError, match="expected_version must be None"):
        store.append("s", [("A", {})], expected_version=-1)
    with pytest.raises(ValueError, match="stream name must be a non-empty string"):
        store.append("", [("A", {})])
    assert store.version("s") == 0 and store.read_all() == []


def fold(state, ev):
    state = dict(state or {"items": 0, "qty": 0})
    state["items"] += 1
    state["qty"] += ev.data["qty"]
    return state


def test_snapshots_give_the_same_state_as_a_full_replay(store):
    store.append("cart", placed(4))
    full, v = store.load("cart", fold)
    assert (full, v) == ({"items": 4, "qty": 6}, 4)
    store.save_snapshot("cart", 4, full)
    store.append("cart", placed(3), expected_version=4)
    from_snap, v2 = store.load("cart", fold)
    state = None
    for ev in store.read("cart"):
        state = fold(state, ev)
    assert from_snap == state == {"items": 7, "qty": 9} and v2 == 7
    assert store.load_snapshot("cart").version == 4
    store.save_snapshot("cart", 2, {"items": 2, "qty": 1})  # older: never replaces the newer one
    assert store.load_snapshot("cart").version == 4


def test_snapshot_beyond_the_stream_is_refused(store):
    store.append("cart", placed(2))
    with pytest.raises(ValueError, match=r"stream 'cart': snapshot version must be an int in \[1, 2\]"):
        store.save_snapshot("cart", 3, {})
    assert store.load_snapshot("cart") is None


def test_sqlite_store_persists_and_guards_other_connections(tmp_path):
    path = str(tmp_path / "shared.db")
    a, b = SQLiteEventStore(path, clock=ManualClock()), SQLiteEventStore(path, clock=ManualClock())
    a.append("order-1", placed(1), expected_version=0)
    assert b.version("order-1") == 1
    errors = []

    def writer(store, kind):
        try:
            store.append("order-1", [(kind, {})], expected_version=1)
        except ConcurrencyConflict as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(s, k)) for s, k in ((a, "Paid"), (b, "Cancelled"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and a.version("order-1") == 2
    a.close()
    b.close()
    reopened = SQLiteEventStore(path, clock=ManualClock())
    assert [e.version for e in reopened.read("order-1")] == [1, 2]
    reopened.close()


def test_what_a_reader_mutates_never_changes_the_store(store):
    """A fold that updates its state in place (a common style) starts from the snapshot's state:
    the next load must not see those updates; nor may edits of a read event rewrite history."""
    store.append("cart", placed(2))

    def fold_in_place(state, ev):
        state["qty"] += ev.data["qty"]
        state["lines"].append(ev.data["sku"])
        return state

    store.save_snapshot("cart", 2, {"qty": 1, "lines": ["s0", "s1"]})
    store.append("cart", placed(2), expected_version=2)
    first, _ = store.load("cart", fold_in_place)
    second, _ = store.load("cart", fold_in_place)
    assert first == second == {"qty": 2, "lines": ["s0", "s1", "s0", "s1"]}
    store.read("cart")[0].data["qty"] = 99
    store.read_all()[1].metadata["x"] = 1
    assert store.read("cart")[0].data == {"sku": "s0", "qty": 0} and store.read_all()[1].metadata == {}
