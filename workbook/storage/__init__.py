"""Database per service: repositories, change data capture, replicas, read-your-writes.

``repository`` (one service's records in its own SQLite file, optimistic versions,
copies on save), ``cdc`` (triggers capture committed changes in order), ``replica``
(copies fed in order and idempotently, lag measured; ``Replicator`` in virtual time),
``session`` (read-your-writes by session version), ``naive`` (the source article's
repository and synchroniser, kept to show aliasing and swallowed sync errors).
"""

from workbook.storage.cdc import Change, ChangeFeed
from workbook.storage.errors import ReplicationGap, StaleVersion, StorageError
from workbook.storage.naive import NaiveRepository, NaiveSynchronizer
from workbook.storage.replica import Replica, Replicator
from workbook.storage.repository import Record, Repository
from workbook.storage.session import ReadYourWrites, Session

__all__ = ["Change", "ChangeFeed", "NaiveRepository", "NaiveSynchronizer", "ReadYourWrites", "Record", "Replica",
           "Replicator", "ReplicationGap", "Repository", "Session", "StaleVersion", "StorageError"]
