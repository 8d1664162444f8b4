"""The in-memory registry, in virtual time: leases, expiry, blocking queries, self-preservation.

State changes (register, deregister, expiry) bump one global ``revision``; each service
remembers the revision of its last change, which is the index a blocking query compares
(Consul's ``X-Consul-Index``). Renewals do not change the set and bump nothing.

Expiry runs in a background task every ``config.eviction_interval`` seconds (start the
registry with ``async with`` or ``await start()``): an instance whose lease was not
renewed for ``ttl`` seconds is removed, unless Eureka's self-preservation holds expiry
(see ``RegistryConfig``). How Eureka decides, as in ``AbstractInstanceRegistry`` and
``PeerAwareInstanceRegistryImpl``: registrations and cancellations (not evictions) update
the number of clients expected to renew; the threshold is
``int(expected * renewal_window / expected_renewal_interval * renewal_percent_threshold)``;
expiry is enabled only while the renewals counted in the last window exceed it.
Like Eureka's ``MeasuredRate``, renewals are counted in consecutive buckets of
``renewal_window`` seconds from the registry's start, and the decision reads the last
*complete* bucket (so a freshly started registry holds expiry for its first window).

``set_reachable(False)`` makes every client call fail with ``RegistryUnavailable`` (the
client's connection to the registry lost), to exercise resolvers.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.core.tasks import stop_task
from workbook.discovery.errors import AlreadyRegistered, LeaseExpired, RegistryUnavailable
from workbook.discovery.instance import Instance, Lease, RegistrySnapshot, check_name, check_ttl
from workbook.discovery.registry import Registry, RegistryConfig


@dataclass
class _Entry:
    instance: Instance
    lease: Lease
    last_renewal: float

    def deadline(self) -> float:
        return self.last_renewal + self.lease.ttl


class InMemoryRegistry(Registry):
    """A registry in one process, on the running loop's (virtual) time; ``name`` is used in errors."""

    def __init__(self, config: RegistryConfig | None = None, *, clock: Clock = DEFAULT_CLOCK, name: str = "memory"):
        self.config = config or RegistryConfig()
        self.clock = clock
        self.name = name
        self.revision = 0
        self._services: dict[str, dict[str, _Entry]] = {}
        self._service_revision: dict[str, int] = {}
        self._leases: dict[int, _Entry] = {}
        self._lease_ids = itertools.count(1)
        self._changed: dict[str, asyncio.Event] = {}
        self._bucket_start: float | None = None
        self._bucket_count = 0
        self._last_bucket_count = 0
        self.expected_clients = 0
        self.reachable = True
        self.evicted: list[tuple[float, str, str]] = []
        self.preservation_log: list[tuple[float, bool]] = []
        self._task: asyncio.Task | None = None

    # lifecycle -------------------------------------------------------------
    async def start(self) -> "InMemoryRegistry":
        if self._task is None:
            self._bucket_start = self.clock.now()
            self._task = asyncio.ensure_future(self._evict_loop())
        return self

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    def set_reachable(self, reachable: bool) -> None:
        """Fault switch: while False, every client call raises ``RegistryUnavailable``."""
        self.reachable = bool(reachable)

    def _check_reachable(self):
        if not self.reachable:
            raise RegistryUnavailable(f"registry {self.name!r} is unreachable", endpoint=self.name)

    # writes ----------------------------------------------------------------
    async def register(self, instance: Instance, ttl: float) -> Lease:
        if not isinstance(instance, Instance):
            raise ParameterError("instance", instance, "an Instance")
        ttl = check_ttl(ttl)
        self._check_reachable()
        entries = self._services.setdefault(instance.service, {})
        if instance.instance_id in entries:
            raise AlreadyRegistered(instance.service, instance.instance_id)
        lease = Lease(next(self._lease_ids), instance.service, instance.instance_id, ttl)
        entry = _Entry(instance, lease, self.clock.now())
        entries[instance.instance_id] = entry
        self._leases[lease.lease_id] = entry
        self.expected_clients += 1
        self._bump(instance.service)
        return lease

    async def renew(self, lease: Lease) -> None:
        self._check_reachable()
        entry = self._leases.get(lease.lease_id)
        if entry is None:
            raise LeaseExpired(lease.lease_id)
        now = self.clock.now()
        entry.last_renewal = now
        self._roll(now)
        self._bucket_count += 1

    async def deregister(self, service: str, instance_id: str) -> bool:
        check_name("service", service)
        check_name("instance_id", instance_id)
        self._check_reachable()
        entry = self._services.get(service, {}).get(instance_id)
        if entry is None:
            return False
        self._remove(entry)
        self.expected_clients = max(0, self.expected_clients - 1)
        self._bump(service)
        return True

    def _remove(self, entry: _Entry) -> None:
        del self._services[entry.instance.service][entry.instance.instance_id]
        del self._leases[entry.lease.lease_id]

    def _bump(self, service: str) -> None:
        self.revision += 1
        self._service_revision[service] = self.revision
        event = self._changed.pop(service, None)
        if event is not None:
            event.set()

    # reads -----------------------------------------------------------------
    async def snapshot(self, service: str) -> RegistrySnapshot:
        check_name("service", service)
        self._check_reachable()
        return self._snapshot(service)

    def current(self, service: str) -> RegistrySnapshot:
        """The registry's own view of ``service`` (no client call: works while unreachable)."""
        return self._snapshot(check_name("service", service))

    def _snapshot(self, service: str) -> RegistrySnapshot:
        entries = self._services.get(service, {})
        return RegistrySnapshot(service, self._service_revision.get(service, 0),
                        tuple(entries[k].instance for k in sorted(entries)))

    async def wait_for_change(self, service: str, revision: int, timeout: float) -> RegistrySnapshot:
        check_name("service", service)
        timeout = check_number("timeout", timeout, minimum=0)
        self._check_reachable()
        if self._service_revision.get(service, 0) == revision and timeout > 0:
            event = self._changed.setdefault(service, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._check_reachable()
        return self._snapshot(service)

    # expiry and self-preservation -------------------------------------------
    def _roll(self, now: float) -> None:
        if self._bucket_start is None:
            self._bucket_start = now
        window = self.config.renewal_window
        if now >= self._bucket_start + window:
            passed = int((now - self._bucket_start) // window)
            self._last_bucket_count = self._bucket_count if passed == 1 else 0
            self._bucket_count = 0
            self._bucket_start += passed * window

    def renewals_in_window(self, now: float | None = None) -> int:
        """Renewals counted in the last complete window (Eureka's ``getNumOfRenewsInLastMin``)."""
        self._roll(self.clock.now() if now is None else now)
        return self._last_bucket_count

    def renewal_threshold(self) -> int:
        c = self.config
        per_client = c.renewal_window / c.expected_renewal_interval
        return int(self.expected_clients * per_client * c.renewal_percent_threshold)

    def lease_expiration_enabled(self, now: float | None = None) -> bool:
        """Eureka's ``isLeaseExpirationEnabled``: always without self-preservation, else only
        while renewals in the window exceed the threshold."""
        if not self.config.self_preservation:
            return True
        threshold = self.renewal_threshold()
        return threshold > 0 and self.renewals_in_window(now) > threshold

    @property
    def self_preservation_active(self) -> bool:
        return not self.lease_expiration_enabled()

    def instance_count(self, service: str | None = None) -> int:
        if service is not None:
            return len(self._services.get(service, {}))
        return sum(len(v) for v in self._services.values())

    def evict(self) -> list[Instance]:
        """One eviction run (the background task calls it every ``eviction_interval``)."""
        now = self.clock.now()
        enabled = self.lease_expiration_enabled(now)
        self.preservation_log.append((now, not enabled))
        if not enabled:
            return []
        expired = sorted((e for e in self._leases.values() if now > e.deadline()),
                         key=lambda e: (e.deadline(), e.instance.service, e.instance.instance_id))
        if self.config.eviction_limit:
            size = len(self._leases)
            limit = size - int(size * self.config.renewal_percent_threshold)
            expired = expired[:limit]
        for entry in expired:
            self._remove(entry)
            self.evicted.append((now, entry.instance.service, entry.instance.instance_id))
            self._bump(entry.instance.service)
        return [e.instance for e in expired]

    async def _evict_loop(self):
        while True:
            await self.clock.sleep(self.config.eviction_interval)
            self.evict()
