"""RED metrics for aiohttp services and chapter 2's resilience metrics, with ``prometheus_client``.

``ServiceMetrics(service)`` owns a ``CollectorRegistry`` with:

* ``http_requests_total{service, route, method, status}`` (counter): Rate and Errors;
  ``route`` is the route's template (``/stock/{sku}``), never the raw path, so the number
  of series stays bounded whatever URLs clients send (an unmatched path is ``unmatched``);
* ``http_request_duration_seconds{service, route, method}`` (histogram): Duration, with
  ``LATENCY_BUCKETS`` = 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5 s: chosen around the
  demo services' 10-300 ms latencies and the 250 ms objective of chapter 2, so
  ``histogram_quantile`` interpolates inside narrow buckets where the answers matter;
* ``http_requests_in_flight{service}`` (gauge).

``instrument_app(app, metrics)`` adds the middleware and ``GET /metrics`` (the text
exposition format). Durations are read from the injected ``Clock``, so under
``run_virtual`` a request's latency is its virtual latency.

``ResilienceMetrics`` subscribes to a ``CircuitBreaker``'s events (``attach_breaker``):
``circuit_breaker_calls_total{breaker, outcome}`` (success, error, ignored_error,
not_permitted: the rejections), ``circuit_breaker_state{breaker, state}`` (1 for the current
state), ``circuit_breaker_transitions_total{breaker, from_state, to_state}``; and to a
``Retry`` (``attach_retry``): ``retries_total{name}`` and ``retry_backoff_seconds_total{name}``.

``Scraper(registry, store, clock)`` copies every sample of the registry into a
``SeriesStore`` at the clock's time (``scrape()``, or ``run(interval, until)``): scraping
in virtual time, so a day of traffic simulated in seconds yields the series a Prometheus
would have stored.
"""

from __future__ import annotations

import math

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.observability.series import SeriesStore

__all__ = ["ServiceMetrics", "ResilienceMetrics", "Scraper", "instrument_app", "metrics_middleware",
           "LATENCY_BUCKETS"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The RED metrics of one service (see module doc); ``registry`` is its own unless given."""

    def __init__(self, service: str, *, registry: CollectorRegistry | None = None,
                 buckets=LATENCY_BUCKETS, clock: Clock | None = None):
        self.service = service
        self.clock = clock or DEFAULT_CLOCK
        self.registry = registry or CollectorRegistry()
        self.buckets = tuple(buckets)
        self.requests = Counter("http_requests", "HTTP requests by route, method and status",
                                ["service", "route", "method", "status"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "HTTP request latency",
                                  ["service", "route", "method"], buckets=self.buckets, registry=self.registry)
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being served", ["service"],
                               registry=self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, route, method, str(status)).inc()
        self.duration.labels(self.service, route, method).observe(seconds)

    def track(self, route: str, method: str = "GET") -> _Tracked:
        """``async with metrics.track("/stock/{sku}") as t: ...; t.status = 503``: in flight while
        inside, then counted and timed on the clock (what a simulated service calls in virtual time)."""
        return _Tracked(self, route, method)


class _Tracked:
    def __init__(self, metrics: ServiceMetrics, route: str, method: str):
        self.metrics, self.route, self.method = metrics, route, method
        self.status = 200

    async def __aenter__(self):
        self.metrics.in_flight.labels(self.metrics.service).inc()
        self.start = self.metrics.clock.now()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is not None and self.status == 200:
            self.status = getattr(exc, "status", 500)
        self.metrics.in_flight.labels(self.metrics.service).dec()
        self.metrics.observe(self.route, self.method, self.status, self.metrics.clock.now() - self.start)
        return False


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(metrics: ServiceMetrics):
    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.path == "/metrics":
            return await handler(request)
        route, method = _route_of(request), request.method
        gauge = metrics.in_flight.labels(metrics.service)
        gauge.inc()
        start = metrics.clock.now()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            gauge.dec()
            metrics.observe(route, method, status, metrics.clock.now() - start)
    return middleware


def instrument_app(app: web.Application, metrics: ServiceMetrics) -> web.Application:
    """Add the RED middleware and ``GET /metrics`` to an app that has not started yet."""
    app.middlewares.append(metrics_middleware(metrics))

    async def expose(request):
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", expose)
    return app


_STATES = ("CLOSED", "OPEN", "HALF_OPEN", "DISABLED", "FORCED_OPEN", "METRICS_ONLY")


class ResilienceMetrics:
    """Breaker and retry metrics fed by their listeners (see module doc)."""

    def __init__(self, *, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.calls = Counter("circuit_breaker_calls", "Calls through a circuit breaker by outcome",
                             ["breaker", "outcome"], registry=self.registry)
        self.state = Gauge("circuit_breaker_state", "1 for the breaker's current state", ["breaker", "state"],
                           registry=self.registry)
        self.transitions = Counter("circuit_breaker_transitions", "Breaker state transitions",
                                   ["breaker", "from_state", "to_state"], registry=self.registry)
        self.retries = Counter("retries", "Retries made (attempts after the first)", ["name"], registry=self.registry)
        self.backoff = Counter("retry_backoff_seconds", "Time spent waiting between attempts", ["name"],
                               registry=self.registry)

    def attach_breaker(self, breaker) -> None:
        name = breaker.name
        self._set_state(name, str(breaker.state))

        def listener(event):
            if event.kind in ("success", "error", "ignored_error", "not_permitted"):
                self.calls.labels(name, event.kind).inc()
            elif event.kind == "state_transition":
                self.transitions.labels(name, str(event.from_state), str(event.to_state)).inc()
                self._set_state(name, str(event.to_state))

        breaker.subscribe(listener)

    def _set_state(self, name, current):
        for s in _STATES:
            self.state.labels(name, s).set(1 if s == current else 0)

    def attach_retry(self, retry, name: str) -> None:
        def listener(attempt, exc, wait):
            self.retries.labels(name).inc()
            self.backoff.labels(name).inc(wait)

        retry.listeners.append(listener)


class Scraper:
    """Copies a registry's samples into a ``SeriesStore`` at the clock's time: a Prometheus in virtual time.

    Counters appear with their ``_total`` names (and ``_created`` samples are skipped, as
    Prometheus's OpenMetrics parser does), histograms as ``_bucket``/``_sum``/``_count``.
    """

    def __init__(self, registries, store: SeriesStore | None = None, *, clock: Clock | None = None):
        self.registries = list(registries) if isinstance(registries, (list, tuple)) else [registries]
        self.store = store if store is not None else SeriesStore()
        self.clock = clock or DEFAULT_CLOCK
        self.scrapes = 0

    def scrape(self) -> float:
        now = self.clock.now()
        for registry in self.registries:
            for family in registry.collect():
                for sample in family.samples:
                    if sample.name.endswith("_created") or math.isnan(sample.value):
                        continue
                    self.store.add(sample.name, sample.labels, now, sample.value)
        self.scrapes += 1
        return now

    async def run(self, interval: float, until: float) -> None:
        """Scrape now and every ``interval`` seconds of the clock up to ``until``."""
        while self.clock.now() <= until + 1e-9:
            self.scrape()
            await self.clock.sleep(interval)
