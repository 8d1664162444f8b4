"""Header handling of a proxy: hop-by-hop removal, forwarding headers, request ids.

* ``HOP_BY_HOP`` (RFC 9110 section 7.6.1, plus the legacy ``Keep-Alive`` and
  ``Proxy-Connection``): ``Connection``, ``Keep-Alive``, ``Proxy-Connection``,
  ``Proxy-Authenticate``, ``Proxy-Authorization``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``; and every header *named in* ``Connection``.
  ``end_to_end(headers)`` drops them, in both directions, keeping repeated headers.
* ``forwarding_headers``: ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` and ``Forwarded``
  (RFC 7239) are **appended** to what the client sent (``, `` separated), never
  overwritten: the upstream sees the whole chain and decides which hops it trusts.
* ``request_id``: the client's ``X-Request-Id`` is passed on if it is 1-128 characters of
  ``[A-Za-z0-9._:-]``; otherwise a new one (128 random bits, hex) replaces it. It goes to the
  upstream and back to the client, and into the access log.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re

from multidict import CIMultiDict

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "transfer-encoding", "upgrade"})
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def connection_listed(headers) -> set[str]:
    """Header names listed in every ``Connection`` header (lower case)."""
    names = set()
    for value in headers.getall("Connection", ()):
        names.update(t.strip().lower() for t in value.split(",") if t.strip())
    return names


@functools.lru_cache(maxsize=64)
def _removed(drop: tuple[str, ...]) -> frozenset[str]:
    return HOP_BY_HOP | {d.lower() for d in drop}


def end_to_end(headers, *, drop=()) -> CIMultiDict:
    """A copy of ``headers`` without the hop-by-hop ones (and without ``drop``)."""
    remove = _removed(tuple(drop))
    if "Connection" in headers:
        remove = remove | connection_listed(headers)
    return CIMultiDict([(k, v) for k, v in headers.items() if k.lower() not in remove])


def _append(headers, name: str, value: str) -> None:
    previous = ", ".join(headers.getall(name, ()))
    headers.popall(name, None)
    headers[name] = f"{previous}, {value}" if previous else value


@functools.lru_cache(maxsize=1024)  # clients come back: parse each address once
def _forwarded_node(remote: str | None) -> str:
    if not remote:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return '"' + remote.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f'"[{ip}]"' if ip.version == 6 else str(ip)


def _quoted(value: str) -> str:
    return value if _TOKEN.match(value) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_forwarding_headers(headers: CIMultiDict, *, remote: str | None, proto: str, host: str | None) -> None:
    """Append this hop to ``X-Forwarded-For/-Proto/-Host`` and ``Forwarded`` (RFC 7239 4)."""
    _append(headers, "X-Forwarded-For", remote or "unknown")
    _append(headers, "X-Forwarded-Proto", proto)
    if host:
        _append(headers, "X-Forwarded-Host", host)
    element = f"for={_forwarded_node(remote)};proto={proto}"
    if host:
        element += f";host={_quoted(host)}"
    _append(headers, "Forwarded", element)


def request_id(headers) -> tuple[str, bool]:
    """``(id, passed_on)``: the client's valid ``X-Request-Id`` or a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    if given is not None and _REQUEST_ID.match(given):
        return given, True
    return os.urandom(16).hex(), False
