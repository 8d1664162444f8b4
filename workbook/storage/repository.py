"""A repository per service: its own SQLite file, reached only through get/save/delete/list.

Database per service means no other service opens this file: they ask the owning service
(API composition) or keep their own copy fed by its changes (``cdc``, ``replica``).

Invariants:

* A record is ``(id, version, data)``; the first save creates version 1 and every save or
  delete must name the version it was based on (``expected_version``; 0 for "does not
  exist yet"). If the stored version differs, nothing is written and ``StaleVersion``
  names the record, the expected and the actual version (optimistic concurrency: two
  writers who both read version 3 cannot both write version 4).
* Data is stored as JSON text. ``save`` copies: a caller mutating its dict afterwards
  changes nothing stored, and every ``get`` returns fresh objects.
* With ``capture_changes=True`` (the default) triggers append every insert, update and
  delete to a ``changes`` table in the same transaction (change data capture, see ``cdc``):
  a change is recorded if and only if the write committed, in commit order. The
  triggers stamp each change with ``wb_now()``, a SQL function this repository registers
  on its connection (its clock): another connection writing the file directly fails,
  which is the point of a database per service.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from workbook.core.clock import Clock, LoopClock
from workbook.core.errors import ParameterError
from workbook.core.params import check_int
from workbook.storage.errors import StaleVersion

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id      TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data    TEXT NOT NULL
);
"""

CDC_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    op        TEXT NOT NULL,
    version   INTEGER NOT NULL,
    data      TEXT,
    at        REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS records_insert AFTER INSERT ON records BEGIN
    INSERT INTO changes(record_id, op, version, data, at) VALUES (NEW.id, 'insert', NEW.version, NEW.data, wb_now());
END;
CREATE TRIGGER IF NOT EXISTS records_update AFTER UPDATE ON records BEGIN
    INSERT INTO changes(record_id, op, version, data, at) VALUES (NEW.id, 'update', NEW.version, NEW.data, wb_now());
END;
CREATE TRIGGER IF NOT EXISTS records_delete AFTER DELETE ON records BEGIN
    INSERT INTO changes(record_id, op, version, data, at) VALUES (OLD.id, 'delete', OLD.version + 1, NULL, wb_now());
END;
"""


@dataclass(frozen=True)
class Record:
    id: str
    version: int
    data: dict[str, Any]


def check_record_id(service: str, record_id) -> str:
    if not isinstance(record_id, str) or not record_id:
        raise ParameterError("record_id", record_id, f"a non-empty string ({service})")
    return record_id


def encode_data(service: str, data) -> str:
    if not isinstance(data, dict):
        raise TypeError(f"{service}: data must be a dict, got {type(data).__name__}")
    try:
        return json.dumps(data, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{service}: data is not JSON-serialisable: {exc}") from None


def _matches(data: dict, where: dict | None) -> bool:
    return where is None or all(k in data and data[k] == v for k, v in where.items())


class Repository:
    """The records of one service, in its own SQLite file (``":memory:"`` for a private one).

    ``service`` names the owner in errors. ``clock`` stamps captured changes (virtual time
    under ``run_virtual``), so replication lag can be measured.
    """

    def __init__(self, path: str = ":memory:", *, service: str = "service", clock: Clock | None = None,
                 capture_changes: bool = True):
        if not isinstance(service, str) or not service:
            raise ParameterError("service", service, "a non-empty string")
        self.path, self.service = path, service
        self.clock = clock or LoopClock()
        self.capture_changes = capture_changes
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.create_function("wb_now", 0, lambda: self.clock.now())
        self.conn.executescript(SCHEMA)
        if capture_changes:
            self.conn.executescript(CDC_SCHEMA)
        self.last_seq = 0  # the change seq of this repository's last write (0 without capture)

    # -- reads ------------------------------------------------------------------------
    def get(self, record_id: str) -> Record | None:
        check_record_id(self.service, record_id)
        row = self.conn.execute("SELECT id, version, data FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else Record(row[0], row[1], json.loads(row[2]))

    def version(self, record_id: str) -> int:
        """The record's version, 0 if it does not exist."""
        got = self.get(record_id)
        return 0 if got is None else got.version

    def list(self, where: dict[str, Any] | None = None) -> list[Record]:
        """Records whose data has every ``where`` field equal to the given value, by id."""
        if where is not None and not isinstance(where, dict):
            raise TypeError(f"{self.service}: where must be a dict or None, got {type(where).__name__}")
        rows = self.conn.execute("SELECT id, version, data FROM records ORDER BY id").fetchall()
        out = [Record(r[0], r[1], json.loads(r[2])) for r in rows]
        return [r for r in out if _matches(r.data, where)]

    # -- writes -----------------------------------------------------------------------
    def save(self, record_id: str, data: dict[str, Any], *, expected_version: int) -> Record:
        """Create (``expected_version=0``) or replace the record at ``expected_version``."""
        check_record_id(self.service, record_id)
        expected = check_int("expected_version", expected_version, minimum=0)
        text = encode_data(self.service, data)
        with self._transaction() as c:
            actual = self._version(c, record_id)
            if actual != expected:
                raise StaleVersion(self.service, record_id, expected, actual)
            if expected == 0:
                c.execute("INSERT INTO records(id, version, data) VALUES (?, 1, ?)", (record_id, text))
            else:
                c.execute("UPDATE records SET version = ?, data = ? WHERE id = ?", (expected + 1, text, record_id))
        return Record(record_id, expected + 1, json.loads(text))

    def delete(self, record_id: str, *, expected_version: int) -> None:
        check_record_id(self.service, record_id)
        expected = check_int("expected_version", expected_version, minimum=1)
        with self._transaction() as c:
            actual = self._version(c, record_id)
            if actual != expected:
                raise StaleVersion(self.service, record_id, expected, actual)
            c.execute("DELETE FROM records WHERE id = ?", (record_id,))

    def close(self) -> None:
        self.conn.close()

    # -- internals --------------------------------------------------------------------
    @staticmethod
    def _version(c, record_id) -> int:
        row = c.execute("SELECT version FROM records WHERE id = ?", (record_id,)).fetchone()
        return 0 if row is None else row[0]

    @contextlib.contextmanager
    def _transaction(self):
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            if self.capture_changes:
                self.last_seq = c.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
