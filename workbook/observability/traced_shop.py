"""A traced, logged and measured shop in virtual time: what chapter 8's trace figures are made of.

Five services and the broker of chapter 3::

    gateway --HTTP--> orders --HTTP--> inventory      (concurrently with payments)
                             --HTTP--> payments
                             --publish "orders.placed"--> broker --> shipping (consumer)

Calls between services are in-process coroutines that behave like HTTP calls on the
wire: the caller opens a CLIENT span and injects ``traceparent`` into a headers dict,
one-way network latency passes (``ShopConfig.network``), the callee extracts the context
from the headers and serves inside a SERVER span, exactly as ``tracing_middleware`` and
``client_trace_config`` do for real aiohttp services. So the traces have the shape a
real deployment gives, but every timestamp comes from the virtual clock and every id from
the seed: the same seed gives the same traces, logs and metrics, byte for byte.

Faults (``ShopConfig``): ``payments`` fails (503) with probability ``error_rate`` and the
order fails (502 at the gateway); ``inventory`` is slow (``slow_latency`` instead of
``latency``) with probability ``slow_rate``; ``slow_from`` / ``slow_until`` restrict the
slow calls to an incident window (seconds of the run), so an alert can fire and be
drilled into. Each service logs JSON lines (``workbook.observability.logs``) carrying the
current trace and span ids, into ``shop.logs``; the gateway has RED metrics
(``ServiceMetrics``) whose latency histogram carries the trace id as an exemplar.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from workbook.core.clock import Clock, LoopClock
from workbook.core.load import open_loop
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.tasks import stop_task
from workbook.messaging.memory import InMemoryBroker
from workbook.observability.instrument import ServiceMetrics
from workbook.observability.logs import LogStore, service_logger
from workbook.observability.propagation import extract_context, inject_context, process_span, publish_traced
from workbook.observability.tracing import ServiceTracer, Tracing, exemplar_of_current_span

__all__ = ["ShopConfig", "TracedShop", "SHOP_SERVICES", "ORDERS_TOPIC"]

SHOP_SERVICES = ("gateway", "orders", "inventory", "payments", "shipping")
ORDERS_TOPIC = "orders.placed"


@dataclass(frozen=True)
class ShopConfig:
    error_rate: float = 0.02
    """Probability that a payment fails (503), failing the order."""
    slow_rate: float = 0.05
    """Probability that a stock lookup is slow (inside the slow window)."""
    latency: float = 0.010
    """Mean seconds of a normal stock lookup (payments take twice, orders' own work half)."""
    slow_latency: float = 0.400
    """Mean seconds of a slow stock lookup."""
    network: float = 0.001
    """One-way network latency of an HTTP call, seconds."""
    broker_delay: float = 0.005
    """Seconds from messages being available to the shipping consumer having fetched them."""
    slow_from: float = 0.0
    slow_until: float = float("inf")

    def __post_init__(self):
        check_number("error_rate", self.error_rate, minimum=0, maximum=1)
        check_number("slow_rate", self.slow_rate, minimum=0, maximum=1)
        for name in ("latency", "slow_latency", "network", "broker_delay"):
            check_number(name, getattr(self, name), minimum=0)
        check_number("slow_until", self.slow_until, minimum=self.slow_from)


class TracedShop:
    """The five services above; ``await shop.checkout(i)`` is one request, ``await shop.run(...)`` a load."""

    def __init__(self, seed: int, config: ShopConfig | None = None, *, tracing: Tracing | None = None,
                 clock: Clock | None = None, logs: LogStore | None = None):
        self.seed = check_int("seed", seed, minimum=0)
        self.config = config or ShopConfig()
        self.clock = clock or LoopClock()
        self.tracing = tracing or Tracing(seed=seed, clock=self.clock)
        self.logs = logs if logs is not None else LogStore()
        self.broker = InMemoryBroker(clock=self.clock)
        self.metrics = ServiceMetrics("gateway", clock=self.clock)
        self.tracers = {s: self.tracing.tracer(s) for s in SHOP_SERVICES}
        self.loggers = {s: service_logger(s, self.logs, clock=self.clock, epoch=self.tracing.epoch)
                        for s in SHOP_SERVICES}
        self._rng = {s: stream(seed, "traced-shop", s) for s in SHOP_SERVICES}
        self.shipped = 0
        self._started = False

    # -- the wire ----------------------------------------------------------------------------
    async def _call(self, caller: str, callee: str, method: str, route: str, path: str, handler) -> int:
        """An HTTP call as on the wire: CLIENT span, ``traceparent`` header, SERVER span."""
        client = self.tracers[caller]
        attributes = {"http.request.method": method, "server.address": callee, "url.full": f"http://{callee}{path}"}
        with client.span(method, kind=SpanKind.CLIENT, attributes=attributes) as span:
            headers = inject_context({})
            await asyncio.sleep(self.config.network)
            status = await self._serve(self.tracers[callee], method, route, path, headers, handler)
            await asyncio.sleep(self.config.network)
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            return status

    async def _serve(self, server: ServiceTracer, method: str, route: str, path: str, headers, handler) -> int:
        span = server.start(f"{method} {route}", kind=SpanKind.SERVER, context=extract_context(headers),
                            attributes={"http.request.method": method, "http.route": route, "url.path": path})
        status = 500
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                status = await handler()
            return status
        finally:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
            server.end(span)

    def _draw(self, service: str, mean: float) -> float:
        return self._rng[service].expovariate(1 / mean) if mean > 0 else 0.0

    # -- the services ------------------------------------------------------------------------
    async def checkout(self, i: int) -> int:
        """One request from outside: ``POST /checkout`` at the gateway; returns its status."""
        if not self._started:
            await self.start()
        sku = f"sku-{i % 7}"
        start = self.clock.now()
        log = self.loggers["gateway"]
        self.metrics.in_flight.labels("gateway").inc()

        async def gateway():
            log.info("checkout received", extra={"request": i, "sku": sku})
            status = await self._call("gateway", "orders", "POST", "/orders", "/orders", lambda: self._orders(i, sku))
            answer = 201 if status < 400 else 502
            (log.warning if answer >= 500 else log.info)("checkout answered %d", answer, extra={"request": i})
            seconds = self.clock.now() - start
            self.metrics.requests.labels("gateway", "/checkout", "POST", str(answer)).inc()
            self.metrics.duration.labels("gateway", "/checkout", "POST").observe(
                seconds, exemplar=exemplar_of_current_span())
            return answer

        try:
            return await self._serve(self.tracers["gateway"], "POST", "/checkout", "/checkout",
                                     {}, gateway)
        finally:
            self.metrics.in_flight.labels("gateway").dec()

    async def _orders(self, i: int, sku: str) -> int:
        log = self.loggers["orders"]
        await asyncio.sleep(self._draw("orders", self.config.latency / 2))
        stock, paid = await asyncio.gather(
            self._call("orders", "inventory", "GET", "/stock/{sku}", f"/stock/{sku}", lambda: self._inventory(sku)),
            self._call("orders", "payments", "POST", "/payments", "/payments", lambda: self._payments(i)))
        if stock >= 400 or paid >= 400:
            log.error("order %d failed: inventory answered %d, payments answered %d", i, stock, paid,
                      extra={"request": i})
            return 502
        await publish_traced(self.broker, self.tracers["orders"], ORDERS_TOPIC, {"order": i, "sku": sku},
                             key=sku)
        log.info("order %d placed", i, extra={"request": i})
        return 201

    async def _inventory(self, sku: str) -> int:
        rng = self._rng["inventory"]
        now = self.clock.now()
        slow = self.config.slow_from <= now < self.config.slow_until and rng.random() < self.config.slow_rate
        await asyncio.sleep(self._draw("inventory", self.config.slow_latency if slow else self.config.latency))
        if slow:
            self.loggers["inventory"].warning("slow stock lookup for %s: index scan", sku, extra={"sku": sku})
        return 200

    async def _payments(self, i: int) -> int:
        rng = self._rng["payments"]
        failed = rng.random() < self.config.error_rate
        await asyncio.sleep(self._draw("payments", 2 * self.config.latency))
        if failed:
            self.tracers["payments"].event("card processor unavailable", {"retryable": True})
            self.loggers["payments"].error("payment for order %d failed: card processor unavailable", i,
                                           extra={"request": i})
            return 503
        return 200

    # -- the consumer --------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the topic and start the shipping consumer (done by the first ``checkout``)."""
        if self._started:
            return
        self._started = True
        await self.broker.create_topic(ORDERS_TOPIC, partitions=1)
        await self.broker.create_group(ORDERS_TOPIC, "shipping")
        await self.broker.join(ORDERS_TOPIC, "shipping", "shipping-1")
        self._consumer = asyncio.ensure_future(self._shipping())

    async def _shipping(self) -> None:
        tracer, log = self.tracers["shipping"], self.loggers["shipping"]
        while True:
            # a long poll (no busy loop while idle); ``broker_delay`` is the fetch latency once messages are there
            deliveries = await self.broker.poll(ORDERS_TOPIC, "shipping", "shipping-1", max_messages=10,
                                                timeout=1.0)
            if deliveries:
                await asyncio.sleep(self.config.broker_delay)
            for d in deliveries:
                with process_span(tracer, d):
                    await asyncio.sleep(self._draw("shipping", self.config.latency))
                    log.info("shipment scheduled for order %s", d.message.payload["order"],
                             extra={"request": d.message.payload["order"]})
                await self.broker.ack(d)
                self.shipped += 1

    async def stop(self) -> None:
        """Let the consumer drain what was published, then stop it."""
        if not self._started:
            return
        while await self.broker.pending_count(ORDERS_TOPIC, "shipping") or sum(
                (await self.broker.end_offsets(ORDERS_TOPIC)).values()) > sum(
                (await self.broker.committed(ORDERS_TOPIC, "shipping")).values()):
            await asyncio.sleep(self.config.broker_delay)
        await stop_task(self._consumer)
        self._started = False

    async def run(self, *, rate: float, duration: float, on_tick=None, tick: float = 15.0) -> list[int]:
        """Open-loop checkouts at ``rate``/s for ``duration`` s (Poisson arrivals from the seed);
        ``on_tick(t)`` every ``tick`` s (a scrape, a rule evaluation). Returns the statuses."""
        await self.start()
        ticking = asyncio.ensure_future(self._tick(on_tick, tick, duration)) if on_tick else None
        statuses = await open_loop(self.checkout, rate=rate, duration=duration, rng=stream(self.seed, "arrivals"),
                                   clock=self.clock)
        if ticking is not None:
            await ticking
        await self.stop()
        return statuses

    async def _tick(self, on_tick, tick: float, duration: float) -> None:
        start = self.clock.now()
        while self.clock.now() - start <= duration + 1e-9:
            on_tick(self.clock.now())
            await asyncio.sleep(tick)
