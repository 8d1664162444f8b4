"""The stable 64-bit hash the affinity balancers use (ring hash, Maglev).

Envoy hashes with xxHash64; Python's ``hash`` changes between processes, so the workbook
uses BLAKE2b cut to 64 bits instead (in the standard library, stable everywhere). The
``seed`` gives independent hash functions of one key (Maglev needs two per backend, as
Envoy's ``xxHash64(key, 1)`` gives).
"""

from __future__ import annotations

import hashlib

from workbook.core.errors import ParameterError


def hash64(key: str | bytes, seed: int = 0) -> int:
    """A 64-bit hash of ``key`` (str is UTF-8 encoded), the same in every process."""
    if isinstance(key, str):
        key = key.encode()
    elif not isinstance(key, (bytes, bytearray)):
        raise ParameterError("key", key, "a str or bytes (hash balancers need a key per request)")
    salt = seed.to_bytes(16, "little") if seed else b""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8, salt=salt).digest(), "little")
