"""Active HTTP health checks with Envoy's semantics: interval, timeout, healthy/unhealthy thresholds.

Envoy (``config.core.v3.HealthCheck``), which this follows, rather than Consul:

* every ``interval`` seconds each host is probed; a probe that does not answer within
  ``timeout`` or answers outside ``expected_statuses`` (200 by default; Envoy's default
  expected range is [200, 200]) is a failure;
* a healthy host becomes unhealthy after ``unhealthy_threshold`` *consecutive* failures,
  an unhealthy one healthy again after ``healthy_threshold`` consecutive successes;
* a new host starts unhealthy and a *single* success marks it healthy ("during startup,
  only a single successful health check is required", Envoy's docs).

Consul differs: a check starts ``critical`` and its status follows the last probe unless
``success_before_passing`` / ``failures_before_critical`` are set (both 0 by default).

The probe is injectable: ``http_probe`` (aiohttp, real time) or any coroutine
``probe(url, timeout) -> status code``, so virtual-time experiments use a simulated one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.errors import ParameterError
from workbook.core.params import check_int, check_number
from workbook.core.tasks import stop_task

Probe = Callable[[str, float], Awaitable[int]]


def check_health_url(url) -> str:
    parsed = urlparse(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ParameterError("url", url, "an http:// or https:// URL with a host (the health check endpoint)")
    return url


@dataclass(frozen=True)
class HealthCheckConfig:
    """Envoy's health check settings (names as in Envoy's API); Envoy's docs suggest e.g. 5 s / 1 s / 2 / 2."""

    interval: float = 5.0
    timeout: float = 1.0
    unhealthy_threshold: int = 2
    healthy_threshold: int = 2
    expected_statuses: tuple[int, ...] = (200,)

    def __post_init__(self):
        check_number("interval", self.interval, minimum=0, min_exclusive=True)
        check_number("timeout", self.timeout, minimum=0, min_exclusive=True)
        check_int("unhealthy_threshold", self.unhealthy_threshold, minimum=1)
        check_int("healthy_threshold", self.healthy_threshold, minimum=1)
        if not self.expected_statuses:
            raise ParameterError("expected_statuses", self.expected_statuses, "at least one HTTP status")


@dataclass
class HostHealth:
    """One host's check state; ``transitions`` lists (time, healthy) changes."""

    url: str
    healthy: bool = False
    started: bool = False  # has the host passed its first check?
    consecutive_successes: int = 0
    consecutive_failures: int = 0
    probes: int = 0
    transitions: list[tuple[float, bool]] = field(default_factory=list)


async def http_probe(url: str, timeout: float) -> int:
    """GET ``url`` with aiohttp; the status code, or 0 when it fails or exceeds ``timeout``."""
    import aiohttp

    try:
        async with asyncio.timeout(timeout):
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as reply:
                    await reply.read()
                    return reply.status
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
        return 0


class HealthChecker:
    """Probes a set of hosts every ``interval`` and keeps each host's Envoy-style health."""

    def __init__(self, config: HealthCheckConfig | None = None, *, probe: Probe = http_probe,
                 clock: Clock = DEFAULT_CLOCK, on_change: Callable[[str, bool], None] | None = None):
        self.config = config or HealthCheckConfig()
        self.probe = probe
        self.clock = clock
        self.on_change = on_change
        self.hosts: dict[str, HostHealth] = {}
        self._task: asyncio.Task | None = None

    def add(self, url: str) -> HostHealth:
        url = check_health_url(url)
        return self.hosts.setdefault(url, HostHealth(url))

    def remove(self, url: str) -> None:
        self.hosts.pop(url, None)

    def healthy(self) -> list[str]:
        return [u for u, h in self.hosts.items() if h.healthy]

    def record(self, url: str, success: bool) -> bool:
        """Apply one probe result to ``url``'s state (the thresholds); return its health after it."""
        h = self.hosts[url]
        h.probes += 1
        before = h.healthy
        if success:
            h.consecutive_successes += 1
            h.consecutive_failures = 0
            if not h.healthy and (not h.started or h.consecutive_successes >= self.config.healthy_threshold):
                h.healthy = True
            h.started = True
        else:
            h.consecutive_failures += 1
            h.consecutive_successes = 0
            if h.healthy and h.consecutive_failures >= self.config.unhealthy_threshold:
                h.healthy = False
        if h.healthy != before:
            h.transitions.append((self.clock.now(), h.healthy))
            if self.on_change is not None:
                self.on_change(url, h.healthy)
        return h.healthy

    async def check(self, url: str) -> bool:
        """Probe ``url`` once (bounded by ``timeout``) and apply the result."""
        try:
            async with asyncio.timeout(self.config.timeout):
                status = await self.probe(url, self.config.timeout)
        except asyncio.TimeoutError:
            status = 0
        return self.record(url, status in self.config.expected_statuses)

    async def check_all(self) -> None:
        urls = list(self.hosts)
        await asyncio.gather(*(self.check(u) for u in urls))

    async def run(self) -> None:
        """Check every host now and then every ``interval`` seconds, until cancelled."""
        while True:
            await self.check_all()
            await self.clock.sleep(self.config.interval)

    def start(self) -> "HealthChecker":
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())
        return self

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
