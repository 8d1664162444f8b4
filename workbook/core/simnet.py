"""A simulated network of in-process services, for virtual time.

Services are async handlers registered under a name. ``await net.call(src, dst, request)``
carries the request across a link (one-way latency drawn from the link's distribution),
lets the destination handle it (service time, its own error rate, optional concurrency
limit with queueing), and carries the response back. Faults switch on and off while it
runs:

* ``down(name)`` / ``up(name)``: calls to (or from) the node fail with
  ``ConnectionRefusedError`` after one link latency, as a refused TCP connect does.
* ``partition(a, b)`` / ``heal(a, b)``: messages between a and b are lost: the caller
  waits until *its own* timeout (pass ``timeout=``); without one it would wait forever,
  which the virtual loop reports as a deadlock.
* ``slow(factor, a, b)``: multiplies the latency of a link (or of every link).
* ``error_rate`` of a service: that fraction of requests get a 503.

Every send, receive, drop and fault is appended to ``net.log`` as a tuple
``(time, event, source, destination, detail)``; with one seed two runs give identical
logs. Randomness comes only from ``net.rng`` (``random.Random(seed)``).

Use it under ``run_virtual`` (instant) or an ordinary loop (real waiting).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from workbook.core.clock import LoopClock
from workbook.core.distributions import Constant, Distribution, make_distribution
from workbook.core.params import check_int, check_number


@dataclass
class Request:
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    source: str = ""


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


Handler = Callable[[Request], Awaitable["Response | Any"]]


@dataclass
class SimService:
    """A node of the network. ``handler`` may return a Response or a body (status 200)."""

    name: str
    handler: Handler | None = None
    service_time: Distribution = Constant(0.0)
    error_rate: float = 0.0
    concurrency: int | None = None
    is_down: bool = False
    handled: int = 0
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)


class SimNetwork:
    """In-process services connected by links with latency, loss and faults."""

    def __init__(self, seed: int = 0, *, latency: Any = 0.001, clock=None, keep_log: bool = True):
        self.rng = random.Random(seed)
        self.clock = clock or LoopClock()
        self.default_latency = make_distribution(latency, name="latency")
        self.services: dict[str, SimService] = {}
        self._links: dict[tuple[str, str], Distribution] = {}
        self._partitions: set[frozenset] = set()
        self._slow: dict[tuple[str, str] | None, float] = {}
        self.keep_log = keep_log
        self.log: list[tuple] = []

    # -- topology -------------------------------------------------------------------
    def add_service(self, name: str, handler: Handler | None = None, *, service_time: Any = 0.0,
                    error_rate: float = 0.0, concurrency: int | None = None) -> SimService:
        if not name or not isinstance(name, str):
            raise ValueError(f"service name must be a non-empty string, got {name!r}")
        if name in self.services:
            raise ValueError(f"service {name!r} is already on the network")
        svc = SimService(
            name,
            handler,
            make_distribution(service_time, name=f"{name}.service_time"),
            check_number(f"{name}.error_rate", error_rate, minimum=0, maximum=1),
            None if concurrency is None else check_int(f"{name}.concurrency", concurrency, minimum=1),
        )
        self.services[name] = svc
        return svc

    def service(self, name: str) -> SimService:
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(f"no service {name!r} on the network (known: {', '.join(sorted(self.services))})") from None

    def set_latency(self, a: str, b: str, latency: Any, *, both_ways: bool = True) -> None:
        dist = make_distribution(latency, name=f"latency[{a}->{b}]")
        self._links[(a, b)] = dist
        if both_ways:
            self._links[(b, a)] = dist

    # -- faults ---------------------------------------------------------------------
    def down(self, name: str) -> None:
        self.service(name).is_down = True
        self._record("fault", name, "", "down")

    def up(self, name: str) -> None:
        self.service(name).is_down = False
        self._record("fault", name, "", "up")

    def partition(self, a: str, b: str) -> None:
        self._partitions.add(frozenset((a, b)))
        self._record("fault", a, b, "partition")

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Heal one partition, or every partition when called without arguments."""
        if a is None:
            self._partitions.clear()
        else:
            self._partitions.discard(frozenset((a, b)))
        self._record("fault", a or "*", b or "*", "heal")

    def slow(self, factor: float, a: str | None = None, b: str | None = None) -> None:
        """Multiply latency by ``factor`` on link a<->b, or on every link when a is None."""
        factor = check_number("factor", factor, minimum=0)
        key = None if a is None else (a, b)
        self._slow[key] = factor
        if key is not None:
            self._slow[(b, a)] = factor
        self._record("fault", a or "*", b or "*", f"slow x{factor:g}")

    # -- traffic --------------------------------------------------------------------
    def latency(self, a: str, b: str) -> float:
        dist = self._links.get((a, b), self.default_latency)
        return dist.sample(self.rng) * self._slow.get((a, b), 1.0) * self._slow.get(None, 1.0)

    async def call(self, src: str, dst: str, request: Request | None = None, *, timeout: float | None = None) -> Response:
        """Send ``request`` from ``src`` to ``dst`` and return the response.

        Raises ``ConnectionRefusedError`` when either end is down and ``TimeoutError``
        when ``timeout`` (seconds) passes first, e.g. across a partition.
        """
        request = request or Request()
        request.source = src
        if timeout is None:
            return await self._call(src, dst, request)
        try:
            return await asyncio.wait_for(self._call(src, dst, request), timeout)
        except TimeoutError:
            self._record("timeout", src, dst, request.path)
            raise

    async def _call(self, src: str, dst: str, request: Request) -> Response:
        target = self.service(dst)
        self._record("send", src, dst, request.path)
        await self.clock.sleep(self.latency(src, dst))
        if frozenset((src, dst)) in self._partitions:
            self._record("drop", src, dst, request.path)
            await asyncio.Event().wait()  # lost: only the caller's timeout ends this
        if target.is_down or (src in self.services and self.services[src].is_down):
            self._record("refused", src, dst, request.path)
            raise ConnectionRefusedError(f"{dst} refused the connection from {src} (node down)")
        response = await self._handle(target, request)
        await self.clock.sleep(self.latency(dst, src))
        if frozenset((src, dst)) in self._partitions:
            self._record("drop", dst, src, f"response {response.status}")
            await asyncio.Event().wait()
        self._record("recv", dst, src, response.status)
        return response

    async def _handle(self, svc: SimService, request: Request) -> Response:
        if svc.concurrency is not None and svc._slots is None:
            svc._slots = asyncio.Semaphore(svc.concurrency)
        if svc._slots is not None:
            async with svc._slots:
                return await self._process(svc, request)
        return await self._process(svc, request)

    async def _process(self, svc: SimService, request: Request) -> Response:
        svc.handled += 1
        service_time = svc.service_time.sample(self.rng)
        if service_time:
            await self.clock.sleep(service_time)
        if svc.error_rate and self.rng.random() < svc.error_rate:
            return Response(503, {"error": f"{svc.name} is unavailable (injected error)"})
        if svc.handler is None:
            return Response(200, {"service": svc.name})
        try:
            result = await svc.handler(request)
        except Exception as exc:  # a handler bug becomes a 500, as a web framework would
            return Response(500, {"error": f"{type(exc).__name__}: {exc}"})
        return result if isinstance(result, Response) else Response(200, result)

    def _record(self, event: str, src: str, dst: str, detail: Any) -> None:
        if self.keep_log:
            self.log.append((round(self.clock.now(), 9), event, src, dst, detail))
