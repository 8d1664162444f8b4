"""Client-side discovery: a resolver keeps a cache of a service's instances, fed by the registry's watch.

``Resolver`` reads a snapshot, then loops on ``registry.wait_for_change`` (a blocking
query / watch: each call waits until the set changes or ``watch_timeout`` passes), so
the cache follows the registry without polling. Callers read the cache
(``instances()``), never the registry.

When the registry cannot be reached, the resolver *keeps serving the last set it knew*,
marks itself disconnected (``status``: since when, how many failures, the last error),
and retries with capped exponential backoff (``retry_initial`` doubling up to
``retry_max``). It never turns a failure into an empty list: before the first snapshot
``instances()`` raises ``RegistryUnavailable``; an empty set raises
``NoInstancesAvailable`` saying whether the registry said so or the cache is stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.params import check_number
from workbook.core.tasks import stop_task
from workbook.discovery.errors import NoInstancesAvailable, RegistryUnavailable
from workbook.discovery.instance import Instance, RegistrySnapshot, check_name
from workbook.discovery.registry import Registry


@dataclass(frozen=True)
class ResolverStatus:
    connected: bool
    revision: int | None
    disconnected_since: float | None
    failures: int
    last_error: str | None
    updates: int


class Resolver:
    """A cached, watched view of one service's instances; ``on_change(snapshot)`` is called on each update."""

    def __init__(self, registry: Registry, service: str, *, clock: Clock = DEFAULT_CLOCK, watch_timeout: float = 30.0,
                 retry_initial: float = 0.1, retry_max: float = 5.0,
                 on_change: Callable[[RegistrySnapshot], None] | None = None):
        self.registry = registry
        self.service = check_name("service", service)
        self.clock = clock
        self.watch_timeout = check_number("watch_timeout", watch_timeout, minimum=0, min_exclusive=True)
        self.retry_initial = check_number("retry_initial", retry_initial, minimum=0, min_exclusive=True)
        self.retry_max = check_number("retry_max", retry_max, minimum=retry_initial)
        self.on_change = on_change
        self.snapshot: RegistrySnapshot | None = None
        self.connected = False
        self.disconnected_since: float | None = None
        self.failures = 0  # consecutive
        self.total_failures = 0
        self.last_error: BaseException | None = None
        self.updates = 0
        self._task: asyncio.Task | None = None
        self._updated = asyncio.Event()

    async def start(self) -> "Resolver":
        """Start watching. The first snapshot is tried once here; if the registry is down the
        error is recorded and the watch loop keeps retrying."""
        try:
            self._apply(await self.registry.snapshot(self.service))
            self._connected()
        except RegistryUnavailable as exc:
            self._failed(exc)
        self._task = asyncio.ensure_future(self._run())
        return self

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.close()

    # the cache --------------------------------------------------------------------
    def instances(self) -> tuple[Instance, ...]:
        """The cached instances; raises instead of returning an empty tuple (see the module docstring)."""
        if self.snapshot is None:
            raise RegistryUnavailable(f"no snapshot of {self.service!r} yet: the registry has not answered "
                                      f"({self.failures} failure(s), last: {self.last_error})")
        if not self.snapshot.instances:
            if self.connected:
                raise NoInstancesAvailable(f"the registry lists no instance of {self.service!r} "
                                           f"(revision {self.snapshot.revision})")
            raise NoInstancesAvailable(f"no instance of {self.service!r} in the cache, and the registry is unreachable "
                                       f"since {self.disconnected_since} (last error: {self.last_error})")
        return self.snapshot.instances

    @property
    def status(self) -> ResolverStatus:
        error = None if self.last_error is None else f"{type(self.last_error).__name__}: {self.last_error}"
        return ResolverStatus(self.connected, None if self.snapshot is None else self.snapshot.revision,
                              self.disconnected_since, self.failures, error, self.updates)

    async def wait_until(self, predicate: Callable[[RegistrySnapshot], bool], timeout: float) -> bool:
        """Wait until ``predicate(snapshot)`` holds (checked now, then at every change of the
        cache), at most ``timeout`` seconds; True if it holds. A *state*, not an event: unlike
        ``wait_updated`` it cannot miss a change that happened before the call (the watch may
        well win the race against the caller)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + check_number("timeout", timeout, minimum=0)
        while True:
            event = self._updated  # taken before the check: a change after it sets this event
            if self.snapshot is not None and predicate(self.snapshot):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                return self.snapshot is not None and bool(predicate(self.snapshot))

    async def wait_updated(self, timeout: float) -> bool:
        """Wait until the cache *next* changes (bounded); True if it did. To wait for a state
        ("four instances listed"), use ``wait_until``: a change just before this call is missed."""
        event = self._updated
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # the watch loop --------------------------------------------------------------------
    def _apply(self, snap: RegistrySnapshot) -> None:
        if self.snapshot is not None and snap.revision == self.snapshot.revision:
            return
        self.snapshot = snap
        self.updates += 1
        event, self._updated = self._updated, asyncio.Event()
        event.set()
        if self.on_change is not None:
            self.on_change(snap)

    def _connected(self) -> None:
        self.connected = True
        self.failures = 0
        self.disconnected_since = None

    def _failed(self, exc: BaseException) -> None:
        if self.connected or self.disconnected_since is None:
            self.disconnected_since = self.clock.now()
        self.connected = False
        self.failures += 1
        self.total_failures += 1
        self.last_error = exc

    def backoff(self, failures: int) -> float:
        return min(self.retry_max, self.retry_initial * 2 ** max(0, failures - 1))

    async def _run(self) -> None:
        while True:
            try:
                if self.snapshot is None:
                    snap = await self.registry.snapshot(self.service)
                else:
                    snap = await self.registry.wait_for_change(self.service, self.snapshot.revision, self.watch_timeout)
                self._connected()
                self._apply(snap)
            except RegistryUnavailable as exc:
                self._failed(exc)
                await self.clock.sleep(self.backoff(self.failures))
