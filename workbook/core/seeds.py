"""Independent random streams from one seed.

An experiment takes one ``seed`` and often needs several random sources that must not
move together: the arrivals, each replica's latency, a fault plan. Deriving them as
``seed * 7919 + 1`` or ``seed + i`` makes streams of neighbouring seeds overlap (seed 1's
second stream is seed 2's first). ``derive_seed`` hashes the seed with a path of labels
instead (BLAKE2b, stable across processes and Python versions, unlike ``hash``), so every
(seed, labels) pair names its own stream, the way numpy's ``SeedSequence.spawn`` does.
"""

from __future__ import annotations

import hashlib
import random

from workbook.core.errors import ParameterError
from workbook.core.params import check_int

_LABEL_TYPES = (str, int)


def derive_seed(seed: int, *labels: str | int) -> int:
    """A 64-bit seed for the stream named ``labels`` under ``seed``.

    ``derive_seed(7, "arrivals")`` and ``derive_seed(7, "replica", 2)`` are independent of
    each other and of every other seed's streams; the same arguments always give the same
    number.
    """
    seed = check_int("seed", seed, minimum=0)
    parts = [str(seed)]
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, _LABEL_TYPES):
            raise ParameterError(f"labels[{i}]", label, "a str or an int")
        parts.append(f"{type(label).__name__}:{label}")
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def stream(seed: int, *labels: str | int) -> random.Random:
    """A ``random.Random`` seeded with ``derive_seed(seed, *labels)``."""
    return random.Random(derive_seed(seed, *labels))
