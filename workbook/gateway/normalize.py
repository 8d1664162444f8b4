"""Path normalisation before routing: the gateway and the upstream must see the same path.

``normalize_path(raw)`` takes the request target's path exactly as received (no query)
and returns the one path the gateway matches routes against *and forwards*. Steps, in order:

1. **Refuse** what has no single meaning (``PathRejected``, HTTP 400): a target not in
   origin-form (not starting with ``/``), characters outside RFC 3986's ``pchar`` set and
   ``/`` (spaces, controls, non-ASCII, a raw backslash), a ``%`` not followed by two hex
   digits, ``%00`` (NUL) and ``%5C`` (backslash: a separator to some upstreams).
2. **Encoded slash policy**: ``%2F`` is refused by default (``encoded_slash="reject"``,
   Envoy's ``UNESCAPE_AND_REDIRECT`` family exists because upstreams disagree on whether
   ``a%2Fb`` is one segment or two); ``"keep"`` passes it through as data, still encoded.
3. **Percent-decoding of unreserved characters only** (RFC 3986 2.3 and 6.2.2.2:
   ``ALPHA DIGIT - . _ ~``); every other escape is kept, its hex digits upper-cased
   (6.2.2.1). ``%25`` stays ``%25``: nothing is decoded twice, so ``%252e%252e`` never
   becomes ``..``.
4. **Duplicate slashes merged** (``//`` -> ``/``, Envoy's ``merge_slashes``), before the
   dot segments, so ``/a//../b`` is ``/b`` as for a file system, not ``/a/b``.
5. **Dot segments removed** (RFC 3986 5.2.4), after step 3 so that ``%2e%2e`` is ``..``:
   ``/api/public/../admin`` and ``/api/public/%2e%2e/admin`` are both ``/api/admin``, and
   meet ``/api/admin``'s auth rule. A ``..`` above the root stays at the root.

The trailing slash is kept (``/api/users/`` is not ``/api/users`` to every upstream).
"""

from __future__ import annotations

import re

from workbook.core.errors import ParameterError
from workbook.gateway.errors import PathRejected

UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ALLOWED = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*\Z")
_HEX = frozenset("0123456789abcdefABCDEF")
ENCODED_SLASH_POLICIES = ("reject", "keep")
MAX_PATH_LENGTH = 4096


def _decode_escapes(path: str, encoded_slash: str) -> str:
    out = []
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        pair = path[i + 1:i + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise PathRejected(f"malformed percent-encoding at offset {i}: {path[i:i + 3]!r}")
        byte = int(pair, 16)
        ch = chr(byte)
        if byte == 0:
            raise PathRejected("an encoded NUL (%00) in the path")
        if ch == "\\":
            raise PathRejected("an encoded backslash (%5C) in the path: some upstreams treat it as a separator")
        if ch == "/" and encoded_slash == "reject":
            raise PathRejected("an encoded slash (%2F) in the path (policy: reject)")
        out.append(ch if ch in UNRESERVED else "%" + pair.upper())
        i += 3
    return "".join(out)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, for an absolute path."""
    output: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments[1:], start=1):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                output.append("")
        elif seg == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(seg)
    return "/" + "/".join(output)


def normalize_path(raw: str, *, encoded_slash: str = "reject") -> str:
    """The normalised path (see the module docstring), or ``PathRejected``."""
    if encoded_slash not in ENCODED_SLASH_POLICIES:
        raise ParameterError("encoded_slash", encoded_slash, f"one of {ENCODED_SLASH_POLICIES}")
    if not isinstance(raw, str) or not raw.startswith("/"):
        raise PathRejected(f"the request target must be an absolute path (origin-form), got {str(raw)[:60]!r}")
    if len(raw) > MAX_PATH_LENGTH:
        raise PathRejected(f"path of {len(raw)} characters > {MAX_PATH_LENGTH}")
    if not _ALLOWED.match(raw):
        bad = next(c for c in raw if not _ALLOWED.match(c))
        raise PathRejected(f"character {bad!r} is not allowed in a path (RFC 3986 pchar)")
    path = _decode_escapes(raw, encoded_slash) if "%" in raw else raw
    if "//" in path:
        path = re.sub(r"/{2,}", "/", path)
    if "/." in path:
        path = remove_dot_segments(path)
    return path
