"""Header handling of a proxy: hop-by-hop removal, forwarding headers, request ids.

* ``HOP_BY_HOP`` (RFC 9110 section 7.6.1, plus the legacy ``Keep-Alive`` and
  ``Proxy-Connection``): ``Connection``, ``Keep-Alive``, ``Proxy-Connection``,
  ``Proxy-Authenticate``, ``Proxy-Authorization``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``; and every header *named in* ``Connection``.
  ``end_to_end(headers)`` drops them, in both directions, keeping repeated headers.
* ``forwarding_headers``: ``X-Forwarded-For`` / ``-Proto`` / ``-Host`` and ``Forwarded``
  (RFC 7239) are **appended** to what the client sent (``, `` separated), never
  overwritten: the upstream sees the whole chain and decides which hops it trusts.
* ``upstream_request_headers`` / ``client_response_headers``: the two steps above fused
  into one pass over a message's headers, as the gateway runs them on every request (same
  result as ``end_to_end`` + ``add_forwarding_headers`` + the request id and deadline; a
  test checks the two agree), returned as ``(name, value)`` pairs ready for aiohttp.
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

from workbook.resilience.deadline import DEADLINE_HEADER

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


@functools.lru_cache(maxsize=1024)  # a handful of Host values in practice
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


class _RandomIds:
    """128-bit ids from the OS's random source, read 256 ids at a time: one ``getrandom``
    system call per 256 requests instead of one per request (Envoy's ``RandomGeneratorImpl``
    buffers its UUID bytes the same way)."""

    def __init__(self, batch: int = 256):
        self.batch, self._hex, self._at = batch, "", 0
        os.register_at_fork(after_in_child=self.discard)  # a forked child must not reuse the parent's ids

    def discard(self) -> None:
        self._hex, self._at = "", 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._hex):
            self._hex, at = os.urandom(16 * self.batch).hex(), 0
        self._at = at + 32
        return self._hex[at:at + 32]


new_request_id = _RandomIds().next
"""A new request id: 128 random bits as 32 hex digits."""


def valid_request_id(value: str) -> bool:
    """1-128 characters of ``[A-Za-z0-9._:-]``: a client's id the gateway passes on."""
    return _REQUEST_ID.match(value) is not None


def request_id(headers) -> tuple[str, bool]:
    """``(id, passed_on)``: the client's valid ``X-Request-Id`` or a new one."""
    given = headers.get(REQUEST_ID_HEADER)
    if given is not None and _REQUEST_ID.match(given):
        return given, True
    return new_request_id(), False


_FORWARDING_NAMES = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"})


@functools.lru_cache(maxsize=64)
def _request_removed(extra: tuple[str, ...]) -> frozenset[str]:
    return HOP_BY_HOP | {"host", "expect", REQUEST_ID_HEADER.lower(), DEADLINE_HEADER} | {e.lower() for e in extra}


@functools.lru_cache(maxsize=1024)  # clients come back: one tuple per (address, scheme, host)
def _this_hop(remote: str | None, proto: str, host: str | None) -> tuple[tuple[str, str], ...]:
    """This hop's forwarding headers, in order: X-Forwarded-For, -Proto, -Host (when there
    is a Host) and Forwarded."""
    element = f"for={_forwarded_node(remote)};proto={proto}" + (f";host={_quoted(host)}" if host else "")
    hop = [("X-Forwarded-For", remote or "unknown"), ("X-Forwarded-Proto", proto)]
    if host:
        hop.append(("X-Forwarded-Host", host))
    hop.append(("Forwarded", element))
    return tuple(hop)


def upstream_request_headers(headers, *, remote: str | None, proto: str, rid: str,
                             extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
    """The headers a proxy sends upstream, in one pass: ``headers`` without the hop-by-hop
    ones, ``Host``, ``Expect``, ``X-Request-Id``, the client's deadline header (a client does
    not set the gateway's internal deadlines) and the names in ``extra``; then the four
    forwarding headers with this hop appended (previous values joined, as
    ``add_forwarding_headers``), then ``X-Request-Id: rid``, then ``extra`` (the deadline)."""
    remove = _request_removed(tuple([name for name, _ in extra]) if extra else ())
    if "Connection" in headers:
        remove = remove | connection_listed(headers)
    out, previous, host = [], None, None
    for name, value in headers.items():
        low = name.lower()
        if low in remove:
            if low == "host" and host is None:
                host = value
            continue
        if low in _FORWARDING_NAMES:
            if previous is None:
                previous = {}
            previous.setdefault(low, []).append(value)
            continue
        out.append((name, value))
    if previous is None:  # the common case: the client sent no forwarding header
        out.extend(_this_hop(remote, proto, host or None))
    else:
        for name, value in _this_hop(remote, proto, host or None):
            joined = ", ".join(previous.get(name.lower(), ()))
            out.append((name, f"{joined}, {value}" if joined else value))
        if not host and "x-forwarded-host" in previous:  # no Host: the client's X-Forwarded-Host is kept
            out.append(("X-Forwarded-Host", ", ".join(previous["x-forwarded-host"])))
    out.append((REQUEST_ID_HEADER, rid))
    out.extend(extra)
    return out


@functools.lru_cache(maxsize=64)
def _response_removed(extra: tuple[str, ...]) -> frozenset[str]:
    return HOP_BY_HOP | {"content-length", REQUEST_ID_HEADER.lower()} | {e.lower() for e in extra}


def client_response_headers(headers, *, rid: str, extra=()) -> list[tuple[str, str]]:
    """The upstream's response headers for the client, in one pass: without the hop-by-hop
    ones and ``Content-Length`` (the gateway's server writes the length of what it sends),
    the upstream's ``X-Request-Id`` replaced by ``rid``, and ``extra`` (``(name, value)``
    pairs, e.g. the rate-limit fields) replacing any upstream header of the same name."""
    remove = _response_removed(tuple([name for name, _ in extra]) if extra else ())
    if "Connection" in headers:
        remove = remove | connection_listed(headers)
    out = [(name, value) for name, value in headers.items() if name.lower() not in remove]
    out.append((REQUEST_ID_HEADER, rid))
    out.extend(extra)
    return out
