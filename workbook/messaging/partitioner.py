"""Choosing a partition for a message: stable across processes, order-preserving per key.

``KeyPartitioner`` uses CRC-32 of the key's UTF-8 bytes (``zlib.crc32``), which is the
same number in every process, on every machine and every Python version, so every
producer sends key ``"order-17"`` to the same partition and per-key order holds.
Messages without a key are spread round-robin (Kafka's default "sticky" or round-robin
behaviour): they balance load but carry no order.

``python_hash_partition`` is what the article does (``hash(message.id) % n``): Python
salts ``hash`` of ``str`` per process (``PYTHONHASHSEED``), so two producer processes
disagree about where a message goes; and hashing the *id* rather than a key scatters the
messages of one entity over all partitions, so their order is lost even in one process.
"""

from __future__ import annotations

import zlib

from workbook.core.params import check_int


def stable_hash(key: str) -> int:
    """An unsigned 32-bit hash of ``key`` that is identical in every process (CRC-32)."""
    return zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF


class KeyPartitioner:
    """``partition(key)``: CRC-32 of the key modulo the partition count; round-robin if no key."""

    def __init__(self):
        self._next: dict[int, int] = {}

    def partition(self, key: str | None, partitions: int) -> int:
        if type(partitions) is not int or partitions < 1:
            check_int("partitions", partitions, minimum=1)
        if key is None:
            p = self._next.get(partitions, 0)
            self._next[partitions] = (p + 1) % partitions
            return p
        if not isinstance(key, str):
            raise TypeError(f"message key must be a string or None, got {type(key).__name__} {key!r}")
        return stable_hash(key) % partitions


def python_hash_partition(message_id: str, partitions: int) -> int:
    """The article's partitioner, kept to show its defect: differs between processes."""
    return hash(message_id) % partitions
