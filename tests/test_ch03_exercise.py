"""The effectively-once exercise: every naive answer is rejected for its own reason; right answers pass."""

import json

import pytest

from workbook.core.verdict import Verdict
from workbook.labs.ch03_async.exercise import check_effectively_once
from workbook.messaging.idempotent import IdempotentHandler, Transaction

KW = {"messages": 200, "seed": 1}


def failed(verdict):
    return [c.name.split(":")[0] for c in verdict.failures]


class NoDedup:
    """The notebook's pre-filled cell: at-least-once, nothing deduplicated."""

    def __init__(self, conn, apply, name="handler"):
        self.conn, self.apply = conn, apply

    def handle(self, message, inside=None):
        with Transaction(self.conn) as conn:
            self.apply(conn, message)
            if inside is not None:
                inside()
        return True


class InMemorySet(NoDedup):
    """Seen ids in a Python set on the handler: gone when the process restarts."""

    def __init__(self, conn, apply, name="handler"):
        super().__init__(conn, apply, name)
        self.seen = set()

    def handle(self, message, inside=None):
        if message.id in self.seen:
            return False
        super().handle(message, inside)
        self.seen.add(message.id)
        return True


class InMemoryDict(NoDedup):
    def __init__(self, conn, apply, name="handler"):
        super().__init__(conn, apply, name)
        self.applied_at = {}

    def handle(self, message, inside=None):
        if message.id in self.applied_at:
            return False
        super().handle(message, inside)
        self.applied_at[message.id] = message.offset
        return True


class ClassLevelSet(NoDedup):
    """A set shared by every handler object of the process: survives fresh objects, not a restart."""

    seen = set()

    def handle(self, message, inside=None):
        if message.id in ClassLevelSet.seen:
            return False
        super().handle(message, inside)
        ClassLevelSet.seen.add(message.id)
        return True


SEEN_GLOBALLY = set()


class ModuleGlobalSet(NoDedup):
    def handle(self, message, inside=None):
        if message.id in SEEN_GLOBALLY:
            return False
        super().handle(message, inside)
        SEEN_GLOBALLY.add(message.id)
        return True


class DedupByPayload(NoDedup):
    """Right transaction, wrong identity: two payments of 5 from one account are one payment to it."""

    def __init__(self, conn, apply, name="handler"):
        super().__init__(conn, apply, name)
        conn.execute("CREATE TABLE IF NOT EXISTS seen_payloads (payload TEXT PRIMARY KEY)")

    def handle(self, message, inside=None):
        with Transaction(self.conn) as conn:
            key = json.dumps(message.payload, sort_keys=True)
            if conn.execute("SELECT 1 FROM seen_payloads WHERE payload = ?", (key,)).fetchone():
                return False
            conn.execute("INSERT INTO seen_payloads VALUES (?)", (key,))
            self.apply(conn, message)
            if inside is not None:
                inside()
        return True


class _SeenTable(NoDedup):
    def __init__(self, conn, apply, name="handler"):
        super().__init__(conn, apply, name)
        conn.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def seen(self, message):
        return self.conn.execute("SELECT 1 FROM seen WHERE id = ?", (message.id,)).fetchone() is not None


class RecordBeforeInItsOwnCommit(_SeenTable):
    """The id committed first, the effect in a second transaction: a crash between loses the payment."""

    def handle(self, message, inside=None):
        if self.seen(message):
            return False
        self.conn.execute("INSERT INTO seen VALUES (?)", (message.id,))  # autocommit: its own commit
        return super().handle(message, inside)


class RecordAfterInItsOwnCommit(_SeenTable):
    """The effect committed first, the id afterwards: a crash between applies the payment twice."""

    def handle(self, message, inside=None):
        if self.seen(message):
            return False
        super().handle(message, inside)
        with Transaction(self.conn) as conn:
            conn.execute("INSERT INTO seen VALUES (?)", (message.id,))
        return True


class SwallowsErrors(IdempotentHandler):
    """Correct deduplication, but every error is caught: a failed write is acknowledged and lost."""

    def handle(self, message, inside=None):
        try:
            return super().handle(message, inside)
        except Exception:  # noqa: BLE001 - the defect under test
            return False


class LearnerAnswer(_SeenTable):
    """A right answer written the way a learner would: look up, then effect and id in one transaction."""

    def handle(self, message, inside=None):
        with Transaction(self.conn) as conn:
            if conn.execute("SELECT 1 FROM seen WHERE id = ?", (message.id,)).fetchone():
                return False
            self.apply(conn, message)
            conn.execute("INSERT INTO seen VALUES (?)", (message.id,))
            if inside is not None:
                inside()
        return True


def test_the_prefilled_answer_without_dedup_fails():
    v = check_effectively_once(NoDedup, **KW)
    assert isinstance(v, Verdict) and not v
    assert "restart" in failed(v) and v.numbers["duplicated"] > 0 and v.numbers["lost"] == 0


@pytest.mark.parametrize("handler", [InMemorySet, InMemoryDict])
def test_an_in_memory_set_or_dict_on_the_handler_fails(handler):
    v = check_effectively_once(handler, **KW)
    assert not v
    assert {"restart", "no message ids kept in memory", "crash experiment"} <= set(failed(v))
    assert v.numbers["duplicated"] > 0  # restarted consumers are new processes: the set is gone
    assert "the handler object (and anything in it) is new" in v.hint


@pytest.mark.parametrize("handler, where", [(ClassLevelSet, "ClassLevelSet.seen"), (ModuleGlobalSet, "SEEN_GLOBALLY")])
def test_a_class_level_or_global_set_fails_although_it_survives_fresh_objects(handler, where):
    v = check_effectively_once(handler, **KW)
    assert not v and failed(v) == ["no message ids kept in memory"]
    assert where in str(v) and "a restarted process starts with it empty" in str(v)


def test_dedup_by_payload_instead_of_message_id_fails():
    v = check_effectively_once(DedupByPayload, **KW)
    assert not v and "equal payloads" in failed(v)
    assert v.numbers["lost"] > 100  # 200 payments, 97 distinct payloads
    assert "deduplicate by message id" in v.hint


def test_recording_the_id_in_its_own_commit_before_the_effect_fails():
    v = check_effectively_once(RecordBeforeInItsOwnCommit, **KW)
    assert not v and "a crash at every point, then a redelivery" in failed(v)
    assert "lost (applied 0 times)" in str(v)


def test_recording_the_id_in_its_own_commit_after_the_effect_fails():
    v = check_effectively_once(RecordAfterInItsOwnCommit, **KW)
    assert not v and failed(v)[0] == "a crash at every point, then a redelivery"
    assert "applied 2 times" in str(v) and "same transaction as the effect" in v.hint


def test_swallowing_errors_fails():
    v = check_effectively_once(SwallowsErrors, **KW)
    assert not v and failed(v)[0] == "a failed ledger write is not acknowledged"
    assert v.numbers["lost"] > 0 and "do not catch the ledger's errors" in v.hint


@pytest.mark.parametrize("handler", [IdempotentHandler, LearnerAnswer])
def test_a_right_answer_passes(handler):
    v = check_effectively_once(handler, **KW)
    assert v, str(v)
    assert v.numbers["crashes"] > 0 and v.numbers["ledger_failures"] > 0 and v.numbers["restarts"] > 0
    assert (v.numbers["lost"], v.numbers["duplicated"]) == (0, 0)
    assert check_effectively_once(handler, **KW) == v  # deterministic


def test_answers_that_cannot_be_judged_are_rejected_with_a_reason():
    assert "expected a handler class" in str(check_effectively_once(None))

    class NoHandle:
        def __init__(self, conn, apply, name="h"):
            pass

    v = check_effectively_once(NoHandle)
    assert not v and "has no handle(message, inside=None) method" in str(v)

    class Broken(NoDedup):
        def handle(self, message, inside=None):
            raise KeyError("oops")

    v = check_effectively_once(Broken, **KW)
    assert not v  # raising on every message never books anything
