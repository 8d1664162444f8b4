"""The etcd registry: etcd v3's JSON gateway over aiohttp, in real time.

etcd 3.4 serves its gRPC API as JSON under ``/v3/`` (``/v3beta/`` is a deprecated alias,
gone in 3.5); keys and values travel base64-encoded, 64-bit integers as strings. Each
instance is one key ``{prefix}{service}/{instance_id}`` holding the instance as JSON and
attached to a lease:

* ``register``: ``/v3/lease/grant`` (TTL), then ``/v3/kv/txn`` comparing the key's
  ``create_revision`` with 0 (absent) and putting it with the lease; if the key exists,
  the lease is revoked and ``AlreadyRegistered`` raised.
* ``register`` rounds the TTL to whole seconds (at least 1), as etcd leases are; the
  ``Lease`` carries the TTL etcd granted.
* ``renew``: ``/v3/lease/keepalive``; a TTL of 0 or no TTL in the answer means the lease
  is gone (``LeaseExpired``). etcd raises a TTL below its minimum (about 1.5 x the election
  timeout) to that minimum.
* ``deregister``: ``/v3/kv/deleterange`` on the key, then the lease is revoked.
* ``snapshot``: ``/v3/kv/range`` over the prefix; the answer's header revision is the
  snapshot's revision. ``serializable=True`` reads the contacted member's local copy, which
  still answers when the cluster has lost its quorum (possibly stale).
* ``wait_for_change``: a ``/v3/watch`` stream from ``revision + 1`` over the prefix; the
  first event ends the wait and a fresh range is read. A compacted start revision ends it
  too, and so does an index ahead of the store (a recreated cluster): the client resets,
  as Consul's blocking query documentation asks.

Every request is bounded by ``request_timeout``. Endpoints are tried in order; a member
that refuses the connection or times out is skipped. When none can do a write and a
member that answers says it has no leader (``/health`` false, or ``etcdserver: no
leader`` / ``request timed out``), the error is ``NoQuorum``; when none answers at all,
``RegistryUnavailable`` naming every endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import urlparse

import aiohttp

from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.discovery.errors import AlreadyRegistered, LeaseExpired, NoQuorum, RegistryUnavailable
from workbook.discovery.instance import Instance, Lease, RegistrySnapshot, check_name, check_ttl
from workbook.discovery.registry import Registry

_QUORUM_HINTS = ("no leader", "request timed out", "leader changed", "timed out")


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix": the prefix with its last byte + 1."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def check_endpoints(endpoints) -> list[str]:
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    out = []
    for i, url in enumerate(endpoints):
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname or not parsed.port:
            raise ParameterError(f"endpoints[{i}]", url, "an http(s)://host:port URL of an etcd member")
        out.append(url.rstrip("/"))
    if not out:
        raise ParameterError("endpoints", endpoints, "at least one etcd client URL")
    return out


class EtcdRegistry(Registry):
    """A registry stored in etcd; ``endpoints`` are the members' client URLs."""

    def __init__(self, endpoints, *, prefix: str = "/services/", request_timeout: float = 2.0,
                 serializable_reads: bool = False):
        self.endpoints = check_endpoints(endpoints)
        if not isinstance(prefix, str) or not prefix.endswith("/"):
            raise ParameterError("prefix", prefix, "a key prefix ending in '/'")
        self.prefix = prefix
        self.request_timeout = check_number("request_timeout", request_timeout, minimum=0, min_exclusive=True)
        self.serializable_reads = bool(serializable_reads)
        self._session: aiohttp.ClientSession | None = None
        self._preferred = 0

    async def start(self) -> "EtcdRegistry":
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            await self._post("/v3/maintenance/status", {}, write=False)  # fails fast, naming the endpoints
        except BaseException:
            await self.close()  # `async with` does not call __aexit__ when __aenter__ raises
            raise
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _key(self, service: str, instance_id: str = "") -> bytes:
        return f"{self.prefix}{service}/{instance_id}".encode()

    # transport ---------------------------------------------------------------
    def _order(self) -> list[str]:
        n = len(self.endpoints)
        return [self.endpoints[(self._preferred + k) % n] for k in range(n)]

    async def _post(self, path: str, body: dict, *, write: bool) -> dict:
        if self._session is None:
            raise RegistryUnavailable("EtcdRegistry is not started: use `async with EtcdRegistry(...)`")
        failures: list[str] = []
        quorum_trouble = False
        for endpoint in self._order():
            try:
                async with asyncio.timeout(self.request_timeout):
                    async with self._session.post(endpoint + path, json=body) as reply:
                        text = await reply.text()
                data = json.loads(text) if text else {}
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
                kind = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
                failures.append(f"{endpoint}: {kind}")
                if isinstance(exc, asyncio.TimeoutError) and not await self._healthy(endpoint):
                    quorum_trouble = True
                continue
            if reply.status == 200 and "error" not in data:
                self._preferred = self.endpoints.index(endpoint)
                return data
            message = str(data.get("error") or data.get("message") or text)[:300]
            if any(h in message for h in _QUORUM_HINTS) or reply.status in (503, 504):
                quorum_trouble = True
                failures.append(f"{endpoint}: {message}")
                continue
            raise RegistryUnavailable(f"etcd at {endpoint} refused {path}: HTTP {reply.status} {message}",
                                      endpoint=endpoint)
        detail = "; ".join(failures)
        if quorum_trouble:
            raise NoQuorum(f"etcd cluster has no quorum ({'write' if write else 'read'} {path} cannot commit): "
                           f"{detail}", endpoint=", ".join(self.endpoints))
        raise RegistryUnavailable(f"no etcd endpoint answered {path}: {detail}", endpoint=", ".join(self.endpoints))

    async def _healthy(self, endpoint: str) -> bool:
        try:
            async with asyncio.timeout(min(0.5, self.request_timeout)):
                async with self._session.get(endpoint + "/health") as reply:
                    return (await reply.json(content_type=None)).get("health") == "true"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            return True  # unreachable, not leaderless: say "unavailable", not "no quorum"

    # registry operations ---------------------------------------------------------
    async def register(self, instance: Instance, ttl: float) -> Lease:
        if not isinstance(instance, Instance):
            raise ParameterError("instance", instance, "an Instance")
        ttl = check_ttl(ttl)
        grant = await self._post("/v3/lease/grant", {"TTL": max(1, round(ttl))}, write=True)
        lease_id = grant["ID"]
        key = _b64(self._key(instance.service, instance.instance_id))
        txn = {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": _b64(instance.to_json()), "lease": lease_id}}],
            "failure": [],
        }
        answer = await self._post("/v3/kv/txn", txn, write=True)
        if not answer.get("succeeded", False):
            await self._revoke(lease_id)
            raise AlreadyRegistered(instance.service, instance.instance_id)
        return Lease(lease_id, instance.service, instance.instance_id, float(grant.get("TTL", ttl)))

    async def _revoke(self, lease_id) -> None:
        try:
            await self._post("/v3/lease/revoke", {"ID": lease_id}, write=True)
        except RegistryUnavailable as exc:
            if "not found" not in str(exc):
                raise

    async def renew(self, lease: Lease) -> None:
        answer = await self._post("/v3/lease/keepalive", {"ID": lease.lease_id}, write=True)
        result = answer.get("result", answer)
        if int(result.get("TTL", 0) or 0) <= 0:
            raise LeaseExpired(lease.lease_id, "etcd answered TTL 0")

    async def deregister(self, service: str, instance_id: str) -> bool:
        check_name("service", service)
        check_name("instance_id", instance_id)
        key = _b64(self._key(service, instance_id))
        answer = await self._post("/v3/kv/deleterange", {"key": key, "prev_kv": True}, write=True)
        prev = answer.get("prev_kvs") or []
        for kv in prev:
            if kv.get("lease"):
                await self._revoke(kv["lease"])
        return int(answer.get("deleted", 0) or 0) > 0

    async def snapshot(self, service: str, *, serializable: bool | None = None) -> RegistrySnapshot:
        check_name("service", service)
        prefix = self._key(service)
        body = {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        if self.serializable_reads if serializable is None else serializable:
            body["serializable"] = True
        answer = await self._post("/v3/kv/range", body, write=False)
        instances = sorted((Instance.from_json(_unb64(kv["value"])) for kv in answer.get("kvs", [])),
                           key=lambda i: i.instance_id)
        return RegistrySnapshot(service, int(answer["header"]["revision"]), tuple(instances))

    async def wait_for_change(self, service: str, revision: int, timeout: float) -> RegistrySnapshot:
        check_name("service", service)
        timeout = check_number("timeout", timeout, minimum=0)
        if timeout > 0:
            await self._watch_once(service, int(revision), timeout)
        return await self.snapshot(service)

    async def _watch_once(self, service: str, revision: int, timeout: float) -> None:
        """Return at the first event on the service's prefix after ``revision``, or after ``timeout``."""
        if self._session is None:
            raise RegistryUnavailable("EtcdRegistry is not started: use `async with EtcdRegistry(...)`")
        prefix = self._key(service)
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix)),
                                   "start_revision": str(revision + 1)}}
        failures = []
        for endpoint in self._order():
            try:
                async with asyncio.timeout(self.request_timeout):
                    reply = await self._session.post(endpoint + "/v3/watch", json=body)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                failures.append(f"{endpoint}: {type(exc).__name__}")
                continue
            try:
                try:
                    async with asyncio.timeout(timeout):
                        while True:
                            line = await reply.content.readline()
                            if not line:
                                raise RegistryUnavailable(f"etcd at {endpoint} closed the watch stream",
                                                          endpoint=endpoint)
                            if not line.strip():
                                continue
                            result = json.loads(line).get("result", {})
                            if result.get("created") and int(result.get("header", {}).get("revision", 0)) < revision:
                                return  # the store is behind the index (a new cluster): reset, as Consul says
                            if result.get("events") or int(result.get("compact_revision", 0) or 0) > 0 \
                                    or result.get("canceled"):
                                return
                except asyncio.TimeoutError:
                    return
                except (aiohttp.ClientError, OSError, ValueError) as exc:  # the member died mid-stream
                    raise RegistryUnavailable(f"etcd at {endpoint} broke the watch stream: {type(exc).__name__}",
                                              endpoint=endpoint) from exc
            finally:
                reply.close()
        raise RegistryUnavailable(f"no etcd endpoint accepted a watch: {'; '.join(failures)}",
                                  endpoint=", ".join(self.endpoints))
