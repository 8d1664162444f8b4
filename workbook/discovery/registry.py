"""The registry interface both backends implement, its settings, and a client's keep-alive.

A registry holds, per service, the instances that registered with a lease and keep
renewing it. Its operations (all coroutines):

* ``register(instance, ttl)``: register-if-absent (etcd: a transaction comparing the
  key's ``create_revision`` with 0; in memory the same check). Returns a ``Lease``;
  raises ``AlreadyRegistered`` if the id is taken.
* ``renew(lease)``: a heartbeat; ``LeaseExpired`` if the lease is gone.
* ``deregister(service, instance_id)``: remove at once (a clean shutdown).
* ``snapshot(service)``: the instances and the revision they are as of.
* ``wait_for_change(service, revision, timeout)``: a *blocking query* (Consul's
  ``?index=``), or an etcd watch from ``revision + 1``: returns as soon as the set is
  newer than ``revision``, or the unchanged snapshot when ``timeout`` passes. A client
  loops on it and keeps a cache (``Resolver``); it never polls in a loop.

Every failure to reach the registry is ``RegistryUnavailable`` (``NoQuorum`` when it
answers but cannot commit), never an empty answer.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.core.tasks import stop_task
from workbook.discovery.errors import LeaseExpired, RegistryUnavailable
from workbook.discovery.instance import Instance, Lease, RegistrySnapshot, check_ttl


@dataclass(frozen=True)
class RegistryConfig:
    """Settings of the in-memory registry (etcd has its own lease clock and no self-preservation).

    * ``eviction_interval``: how often expired leases are removed (Eureka's
      ``evictionIntervalTimerInMs``, 60 s; etcd checks about every 500 ms).
    * ``self_preservation``: Eureka's self-preservation mode. The registry expects each
      registered client to renew every ``expected_renewal_interval`` seconds
      (``expectedClientRenewalIntervalSeconds``, 30 s); when the renewals counted over the
      last ``renewal_window`` (60 s) are not above ``renewal_percent_threshold`` (0.85) of
      that expectation, expiry stops: the registry assumes that it, not the instances, is
      cut off.
    * ``eviction_limit``: Eureka evicts at most ``size - int(size * threshold)`` expired
      instances per eviction run (chosen at random; here the longest expired first).
    """

    eviction_interval: float = 0.5
    self_preservation: bool = False
    renewal_percent_threshold: float = 0.85
    expected_renewal_interval: float = 30.0
    renewal_window: float = 60.0
    eviction_limit: bool = False

    def __post_init__(self):
        check_number("eviction_interval", self.eviction_interval, minimum=0, min_exclusive=True)
        check_number("renewal_percent_threshold", self.renewal_percent_threshold, minimum=0, maximum=1)
        check_number("expected_renewal_interval", self.expected_renewal_interval, minimum=0, min_exclusive=True)
        check_number("renewal_window", self.renewal_window, minimum=0, min_exclusive=True)
        for name in ("self_preservation", "eviction_limit"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(name, getattr(self, name), "True or False")

    @classmethod
    def eureka(cls, **overrides) -> "RegistryConfig":
        """Eureka's server defaults: eviction every 60 s, self-preservation at 85 % of renewals
        expected every 30 s, counted over the last minute, evictions capped per run."""
        settings = dict(eviction_interval=60.0, self_preservation=True, renewal_percent_threshold=0.85,
                        expected_renewal_interval=30.0, renewal_window=60.0, eviction_limit=True)
        settings.update(overrides)
        return cls(**settings)


class Registry(ABC):
    """What a service registry offers; see the module docstring. Use as ``async with``."""

    async def start(self) -> "Registry":
        return self

    async def close(self) -> None:
        return None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    @abstractmethod
    async def register(self, instance: Instance, ttl: float) -> Lease: ...

    @abstractmethod
    async def renew(self, lease: Lease) -> None: ...

    @abstractmethod
    async def deregister(self, service: str, instance_id: str) -> bool: ...

    @abstractmethod
    async def snapshot(self, service: str) -> RegistrySnapshot: ...

    @abstractmethod
    async def wait_for_change(self, service: str, revision: int, timeout: float) -> RegistrySnapshot: ...

    async def watch(self, service: str, *, timeout: float = 30.0) -> AsyncIterator[RegistrySnapshot]:
        """Yield the current snapshot, then each newer one (blocking queries in a loop)."""
        snap = await self.snapshot(service)
        yield snap
        while True:
            newer = await self.wait_for_change(service, snap.revision, timeout)
            if newer.revision != snap.revision:
                snap = newer
                yield snap


class KeepAlive:
    """An instance's side of the lease: register, then renew every ``interval`` seconds.

    When a renewal finds the lease gone (expired during a pause), it registers again, as
    Eureka clients do on a 404. A registry it cannot reach is retried at the next
    interval; ``errors`` counts such failures. ``pause()``/``resume()`` stop and restart
    the heartbeats (a partition between this instance and the registry).
    """

    def __init__(self, registry: Registry, instance: Instance, ttl: float, *, interval: float | None = None,
                 clock: Clock = DEFAULT_CLOCK):
        self.registry, self.instance, self.ttl = registry, instance, check_ttl(ttl)
        self.interval = check_number("interval", ttl / 3 if interval is None else interval, minimum=0,
                                     min_exclusive=True)
        self.clock = clock
        self.lease: Lease | None = None
        self.renewals = 0
        self.reregistrations = 0
        self.errors = 0
        self.paused = False
        self._task: asyncio.Task | None = None

    async def start(self) -> "KeepAlive":
        self.lease = await self.registry.register(self.instance, self.ttl)
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self):
        while True:
            await self.clock.sleep(self.interval)
            if self.paused:
                continue
            try:
                await self.registry.renew(self.lease)
                self.renewals += 1
            except LeaseExpired:
                try:
                    self.lease = await self.registry.register(self.instance, self.ttl)
                    self.reregistrations += 1
                except Exception:  # taken or unreachable: try again next interval
                    self.errors += 1
            except RegistryUnavailable:
                self.errors += 1

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    async def stop(self, *, deregister: bool = True) -> None:
        await stop_task(self._task)
        self._task = None
        if deregister:
            await self.registry.deregister(self.instance.service, self.instance.instance_id)
