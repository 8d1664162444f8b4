"""Chapter 4: the workbook's SQLite event store against the ``eventsourcing`` library's SQLite persistence.

Both sides write to a SQLite file in WAL mode in the same temporary directory (on tmpfs
when the machine has one: on this machine's shared disk each commit's fsync took from
0.2 to 3 ms from one run to the next, which drowned the difference between the two
libraries), in the same process and run, with the default settings of each. What each does per event:

* **ours** (``SQLiteEventStore``): ``append(stream, [event], expected_version=v)`` is one
  ``BEGIN IMMEDIATE`` transaction: ``SELECT MAX(version)`` for the stream, the expected
  version check, one ``INSERT`` (type, data and metadata as ``json.dumps`` text, the
  clock's time). Reading decodes each row with two ``json.loads`` into a ``RecordedEvent``.
* **eventsourcing** (``Application`` with ``PERSISTENCE_MODULE=eventsourcing.sqlite``):
  ``app.save(aggregate)`` collects the aggregate's pending event objects, transcodes each
  (its ``__dict__`` with UUID and datetime through the JSON transcoder) into a
  ``StoredEvent`` with a topic, and inserts them in one transaction, where the
  ``UNIQUE(originator_id, originator_version)`` constraint does the optimistic check.
  Reading resolves the topic, decodes and reconstructs each event object, then mutates
  the aggregate (``repository.get``), or returns notifications for a projection.

Cases (one event per save/append unless said): one aggregate, 2,000 events; many
aggregates, 500 aggregates x 4 events interleaved; rebuild one aggregate of 10,000
events (one read, fold); a projection over 100,000 events (read in pages of 500,
decode, count per type in a dict; events written beforehand in batches of 1,000).
Best of 3 rounds (fresh files each round); ratio = their time / our time (above 1: ours faster).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter

from workbook.event_sourcing.event_store import NewEvent, SQLiteEventStore

ONE_AGG = 2_000
MANY_AGGS, PER_AGG = 500, 4
REBUILD = 10_000
PROJECTION = 100_000
PAGE = 500
ROUNDS = 3


_CLASSES: dict = {}


def _es_app(path):
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    if "Counter" not in _CLASSES:
        class Counter_(Aggregate):
            def __init__(self):
                self.n = 0

            @event("Incremented")
            def increment(self, by: int):
                self.n += by

        _CLASSES["Counter"] = Counter_
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path,
                           "IS_SNAPSHOTTING_ENABLED": "n"})
    return app, _CLASSES["Counter"]


class _FixedClock:
    def now(self):
        return 0.0


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def append_one(tmp):
    ours = SQLiteEventStore(os.path.join(tmp, "ours1.sqlite"), clock=_FixedClock())

    def ours_run():
        for v in range(ONE_AGG):
            ours.append("counter-1", [NewEvent("Incremented", {"by": 1})], expected_version=v)

    app, Ctr = _es_app(os.path.join(tmp, "es1.sqlite"))

    def es_run():
        agg = Ctr()
        app.save(agg)
        for _ in range(ONE_AGG - 1):
            agg.increment(by=1)
            app.save(agg)

    return _timed(ours_run)[0], _timed(es_run)[0]


def append_many(tmp):
    ours = SQLiteEventStore(os.path.join(tmp, "ours2.sqlite"), clock=_FixedClock())

    def ours_run():
        for v in range(PER_AGG):
            for a in range(MANY_AGGS):
                ours.append(f"counter-{a}", [NewEvent("Incremented", {"by": 1})], expected_version=v)

    app, Ctr = _es_app(os.path.join(tmp, "es2.sqlite"))

    def es_run():
        aggs = [Ctr() for _ in range(MANY_AGGS)]
        for a in aggs:
            app.save(a)
        for _ in range(PER_AGG - 1):
            for a in aggs:
                a.increment(by=1)
                app.save(a)

    return _timed(ours_run)[0], _timed(es_run)[0]


def rebuild(tmp):
    ours = SQLiteEventStore(os.path.join(tmp, "ours3.sqlite"), clock=_FixedClock())
    for start in range(0, REBUILD, 1000):
        ours.append("counter-big", [NewEvent("Incremented", {"by": 1})] * 1000, expected_version=start)
    app, Ctr = _es_app(os.path.join(tmp, "es3.sqlite"))
    agg = Ctr()
    for _ in range(REBUILD - 1):
        agg.increment(by=1)
    app.save(agg)

    def ours_run():
        state, version = ours.load("counter-big", lambda n, ev: n + ev.data["by"], 0)
        assert version == REBUILD and state == REBUILD

    def es_run():
        got = app.repository.get(agg.id)
        assert got.version == REBUILD and got.n == REBUILD - 1

    return _timed(ours_run)[0], _timed(es_run)[0]


def projection(tmp):
    ours = SQLiteEventStore(os.path.join(tmp, "ours4.sqlite"), clock=_FixedClock())
    per = 1000
    for s in range(PROJECTION // per):
        ours.append(f"counter-{s}", [NewEvent("Incremented", {"by": 1})] * per, expected_version=0)
    app, Ctr = _es_app(os.path.join(tmp, "es4.sqlite"))
    for _ in range(PROJECTION // per):
        agg = Ctr()
        for _ in range(per - 1):
            agg.increment(by=1)
        app.save(agg)

    def ours_run():
        counts, pos = Counter(), 1
        while batch := ours.read_all(pos, PAGE):
            for ev in batch:
                counts[ev.type] += 1
            pos = batch[-1].position + 1
        assert sum(counts.values()) == PROJECTION

    def es_run():
        counts, start = Counter(), 1
        while notes := app.recorder.select_notifications(start, PAGE):
            for n in notes:
                counts[type(app.mapper.to_domain_event(n)).__name__] += 1
            start = notes[-1].id + 1
        assert sum(counts.values()) == PROJECTION

    return _timed(ours_run)[0], _timed(es_run)[0]


def _where() -> str | None:
    """tmpfs when there is one: the files then measure the software, not a shared disk's fsync."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def run() -> str:
    from importlib.metadata import version

    rows = []
    base = _where()
    for name, fn, n in (("append, one aggregate", append_one, ONE_AGG),
                        ("append, many aggregates", append_many, MANY_AGGS * PER_AGG),
                        ("rebuild one aggregate", rebuild, REBUILD),
                        ("projection (read all, decode, count)", projection, PROJECTION)):
        best_ours = best_theirs = float("inf")
        for _ in range(ROUNDS):   # fresh files each round; the best round of each side
            with tempfile.TemporaryDirectory(dir=base) as tmp:
                ours, theirs = fn(tmp)
            best_ours, best_theirs = min(best_ours, ours), min(best_theirs, theirs)
        rows.append(f"| {name} | {n:,} | {best_ours:.3f} s ({n / best_ours:,.0f}/s) | {best_theirs:.3f} s "
                    f"({n / best_theirs:,.0f}/s) | {best_theirs / best_ours:.2f}x |")
    where = "tmpfs (/dev/shm)" if base else "the default temporary directory"
    head = (f"### Event store: workbook `SQLiteEventStore` vs `eventsourcing` {version('eventsourcing')} (SQLite)\n\n"
            f"Files on {where}; best of {ROUNDS} rounds, fresh files each round.\n\n"
            "| case | events | ours | eventsourcing | ratio (theirs/ours) |\n|---|---:|---:|---:|---:|\n")
    return head + "\n".join(rows) + "\n\n" + __doc__.split("\n\n", 1)[1].strip() + "\n"


if __name__ == "__main__":
    print(run())
