"""Change data capture, replicas fed in order and idempotently, lag, read-your-writes."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbook.core import ManualClock, ParameterError, run_virtual
from workbook.core.clock import LoopClock
from workbook.storage import (ChangeFeed, ReadYourWrites, Replica, Replicator, ReplicationGap, Repository, Session,
                              StaleVersion)


def test_changes_are_captured_in_commit_order_with_time():
    clock = ManualClock(10.0)
    repo = Repository(service="users", clock=clock)
    feed = ChangeFeed(repo)
    repo.save("u1", {"name": "Ada"}, expected_version=0)
    clock.advance(1)
    repo.save("u1", {"name": "Ada L."}, expected_version=1)
    repo.save("u2", {"name": "Bob"}, expected_version=0)
    clock.advance(1)
    repo.delete("u2", expected_version=1)
    got = [(c.seq, c.record_id, c.op, c.version, c.data, c.at) for c in feed.read()]
    assert got == [(1, "u1", "insert", 1, {"name": "Ada"}, 10.0), (2, "u1", "update", 2, {"name": "Ada L."}, 11.0),
                   (3, "u2", "insert", 1, {"name": "Bob"}, 11.0), (4, "u2", "delete", 2, None, 12.0)]
    assert feed.head() == 4 and [c.seq for c in feed.read(after=2, limit=1)] == [3]


def test_a_refused_write_captures_nothing():
    repo = Repository(service="users")
    repo.save("u1", {"n": 1}, expected_version=0)
    with pytest.raises(StaleVersion):
        repo.save("u1", {"n": 2}, expected_version=0)
    assert ChangeFeed(repo).head() == 1


def test_feed_needs_capture():
    with pytest.raises(ValueError, match="capture_changes"):
        ChangeFeed(Repository(capture_changes=False))
    with pytest.raises(ParameterError, match="after"):
        ChangeFeed(Repository()).read(after=-1)


def test_replica_applies_in_order_idempotently_and_refuses_a_gap(tmp_path):
    repo = Repository(service="users", clock=ManualClock())
    for i in range(3):
        repo.save(f"u{i}", {"i": i}, expected_version=0)
    changes = ChangeFeed(repo).read()
    path = str(tmp_path / "replica.sqlite")
    rep = Replica(path, clock=ManualClock())
    assert rep.apply(changes[0]) and not rep.apply(changes[0])
    with pytest.raises(ReplicationGap, match="seq 3 does not follow seq 1"):
        rep.apply(changes[2])
    assert rep.applied_seq == 1 and rep.duplicates == 1
    rep.close()
    again = Replica(path, clock=ManualClock())          # restarts from its stored position
    assert again.applied_seq == 1
    for ch in changes:
        again.apply(ch)
    assert [r.data for r in again.list()] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_another_services_copy_through_a_mapping():
    users = Repository(service="users", clock=ManualClock())
    users.save("u1", {"name": "Ada", "email": "ada@x", "password": "secret"}, expected_version=0)
    users.save("u2", {"name": "Bob", "email": "bob@x", "password": "pw"}, expected_version=0)
    users.delete("u2", expected_version=1)
    billing = Replica(name="billing.customers", clock=ManualClock(),
                      mapping=lambda ch: (ch.record_id, {"name": ch.data["name"], "email": ch.data["email"]}))
    for ch in ChangeFeed(users).read():
        billing.apply(ch)
    assert [(r.id, r.data) for r in billing.list()] == [("u1", {"name": "Ada", "email": "ada@x"})]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 9)), min_size=1, max_size=15),
       st.lists(st.integers(0, 30), max_size=30), st.randoms(use_true_random=False))
def test_replica_equals_primary_whatever_the_redeliveries(writes, crash_points, rnd):
    """Changes delivered with duplicates and re-reads after 'crashes' still give exactly the primary's records."""
    repo = Repository(service="s", clock=ManualClock())
    for key, value in writes:
        current = repo.version(key)
        if value == 0 and current:
            repo.delete(key, expected_version=current)
        else:
            repo.save(key, {"v": value}, expected_version=current)
    feed = ChangeFeed(repo)
    rep = Replica(clock=ManualClock())
    delivered = 0
    while rep.applied_seq < feed.head():
        batch = feed.read(after=max(0, rep.applied_seq - rnd.randint(0, 3)))   # redelivers some
        for ch in batch[: rnd.randint(1, len(batch))]:
            rep.apply(ch)
            delivered += 1
    assert [(r.id, r.version, r.data) for r in rep.list()] == [(r.id, r.version, r.data) for r in repo.list()]


def test_replicator_follows_in_virtual_time_and_measures_lag():
    async def main():
        repo = Repository(service="orders")
        rep = Replica()
        r = Replicator(ChangeFeed(repo), rep, delay={"kind": "uniform", "low": 0.1, "high": 0.3}, poll_interval=0.05,
                       rng=random.Random(1))
        r.start()
        for i in range(20):
            repo.save(f"o{i}", {"i": i}, expected_version=0)
            await LoopClock().sleep(0.1)
        await LoopClock().sleep(2.0)
        await r.stop()
        return rep

    rep = run_virtual(main())
    assert rep.applied_seq == 20 and len(rep.lags) == 20
    # a change waits for the poll, for a batch already being shipped, then for its own shipping
    assert all(0.1 <= lag <= 0.05 + 0.3 + 0.3 + 1e-9 for lag in rep.lags)
    assert len(set(round(lag, 6) for lag in rep.lags)) > 5   # a distribution, not one number


def test_replicator_reports_and_retries_a_failing_change_never_skips_it():
    async def main():
        repo = Repository(service="users")
        broken = {"on": True}

        def mapping(ch):
            if broken["on"] and ch.record_id == "u2":
                raise KeyError("email")
            return ch.record_id, ch.data

        rep = Replica(mapping=mapping)
        r = Replicator(ChangeFeed(repo), rep, poll_interval=0.05, retry_delay=0.5)
        r.start()
        for i in range(4):
            repo.save(f"u{i}", {"i": i}, expected_version=0)
        await LoopClock().sleep(1.2)
        stuck = rep.applied_seq
        broken["on"] = False
        await LoopClock().sleep(1.0)
        await r.stop()
        return stuck, rep.applied_seq, r.failures

    stuck, final, failures = run_virtual(main())
    assert stuck == 2                       # waits at the failing change, in order
    assert final == 4
    assert failures and all(seq == 3 and "KeyError" in err for seq, err in failures)


def test_read_your_writes_removes_stale_reads():
    def run(enabled):
        async def main():
            repo = Repository(service="profiles")
            rep = Replica()
            r = Replicator(ChangeFeed(repo), rep, delay=0.2, poll_interval=0.05)
            r.start()
            rw = ReadYourWrites(repo, rep, enabled=enabled)
            stale = 0
            session = Session()
            for i in range(10):
                current = repo.version("me")
                rw.save(session, "me", {"bio": f"v{i}"}, expected_version=current)
                await LoopClock().sleep(0.05)
                got = rw.get(session, "me")
                stale += got is None or got.data != {"bio": f"v{i}"}
                await LoopClock().sleep(0.3)
                got = rw.get(session, "me")
                stale += got is None or got.data != {"bio": f"v{i}"}
            await r.stop()
            return stale, dict(rw.reads)
        return run_virtual(main())

    stale_without, reads_without = run(False)
    stale_with, reads_with = run(True)
    assert stale_without == 10 and reads_without == {"replica": 20}
    assert stale_with == 0 and reads_with == {"primary": 10, "replica": 10}


def test_read_your_writes_needs_a_capturing_primary():
    with pytest.raises(ValueError, match="capture_changes"):
        ReadYourWrites(Repository(capture_changes=False), Replica())
