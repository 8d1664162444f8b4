"""Chapter 8's live dashboard, without the widgets: an instrumented service under load in virtual time.

``DashboardSim(seed)`` is one ``checkout`` service whose RED metrics are recorded by
``ServiceMetrics`` (``prometheus_client``), fed by ``open_loop`` arrivals (Poisson, ``rate``
per second) in virtual time. ``advance(seconds)`` runs the load for that long, 15 s at a
time: each step's requests are served (``metrics.track``: in flight, counted, timed on the
virtual clock), then the registry is scraped into a ``SeriesStore`` and the rules of
``DASHBOARD_RULES`` are evaluated, as a Prometheus scraping and evaluating every 15 s
would. ``set_fault(kind)`` changes what the next steps do:

* ``"none"``: 0.5% errors, latencies lognormal around 40 ms;
* ``"errors"``: 20% of requests fail with 503;
* ``"slow"``: latencies ten times longer.

``points`` holds one row per step (time, request rate, error ratio, p90 latency from
PromQL over the scraped series, ``None`` until two scrapes hold requests; the alerts'
states); ``transitions`` the alert state changes. The same seed and the same calls give
the same numbers: the widget panel (``figures.dashboard_panel``) and ``scripted_run``
(the notebook's checked cell) call this.
"""

from __future__ import annotations

import asyncio
import math

from workbook.core.clock import LoopClock
from workbook.core.load import open_loop
from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.virtual_time import run_virtual
from workbook.observability import (Engine, ObservabilityError, RuleEvaluator, Scraper, SeriesStore, ServiceMetrics,
                                    load_rules)

__all__ = ["DashboardSim", "DASHBOARD_RULES", "FAULTS", "STEP", "scripted_run"]

STEP = 15.0
FAULTS = ("none", "errors", "slow")

DASHBOARD_RULES = """
groups:
  - name: checkout-red
    rules:
      - alert: HighErrorRatio
        expr: >-
          sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m])) > 0.05
        for: 1m
        labels: {severity: page}
      - alert: SlowP90
        expr: >-
          histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[1m]))) > 0.25
        for: 1m
        labels: {severity: page}
"""
QUERIES = {
    "rate": "sum(rate(http_requests_total[1m]))",
    "error_ratio": 'sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))',
    "p90": "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))",
}


def _value(result) -> float:
    if isinstance(result, dict):
        result = next(iter(result.values()), math.nan)
    return math.nan if result is None else float(result)


class DashboardSim:
    """An instrumented service, its scraped series and its alerts, advanced step by step (module doc)."""

    def __init__(self, seed: int = 0, *, rate: float = 20.0):
        self.seed = check_int("seed", seed, minimum=0)
        self.rate = check_number("rate", rate, minimum=0.1, maximum=500)
        self.now = 0.0
        self.fault = "none"
        self.clock = LoopClock()
        self.metrics = ServiceMetrics("checkout", clock=self.clock)
        self.store = SeriesStore()
        self.scraper = Scraper(self.metrics.registry, self.store, clock=_At(self))
        self.evaluator = RuleEvaluator(load_rules(DASHBOARD_RULES, name="dashboard"), self.store)
        self.engine = Engine(self.store)
        self._rng = stream(self.seed, "ch08", "dashboard")
        self.points: list[dict] = []
        self.transitions: list[dict] = []
        self._states = {"HighErrorRatio": "inactive", "SlowP90": "inactive"}
        self.scraper.scrape()  # a first sample at t = 0, as a Prometheus that was already running

    def set_fault(self, kind: str) -> None:
        if kind not in FAULTS:
            raise ObservabilityError(f"fault: expected one of {', '.join(FAULTS)}, got {kind!r}")
        self.fault = kind

    async def _serve(self, i: int) -> int:
        rng = self._rng
        slow = 10.0 if self.fault == "slow" else 1.0
        failing = 0.20 if self.fault == "errors" else 0.005
        async with self.metrics.track("/checkout", "POST") as t:
            await asyncio.sleep(slow * rng.lognormvariate(-3.2, 0.5))
            if rng.random() < failing:
                t.status = 503
        return t.status

    def _step(self) -> None:
        async def load():
            await open_loop(self._serve, rate=self.rate, duration=STEP, rng=self._rng)

        run_virtual(load(), start=self.now)
        self.now += STEP
        self.scraper.scrape()
        alerts = {a.rule: a.state for a in self.evaluator.evaluate(self.now)}
        row = {"t": self.now, "fault": self.fault}
        for name, expr in QUERIES.items():
            value = _value(self.engine.query(expr, self.now))
            row[name] = None if math.isnan(value) else round(value, 4)  # None: not enough samples yet
        for rule in self._states:
            state = alerts.get(rule, "inactive")
            if state != self._states[rule]:
                shown = "resolved" if self._states[rule] == "firing" and state == "inactive" else state
                self.transitions.append({"t": self.now, "alert": rule, "from": self._states[rule], "to": shown})
                self._states[rule] = state
            row[rule] = state
        self.points.append(row)

    def advance(self, seconds: float = 60.0) -> list[dict]:
        """Run the load for ``seconds`` (a multiple of 15 s, rounded up); the new rows."""
        seconds = check_number("seconds", seconds, minimum=STEP, maximum=24 * 3600)
        before = len(self.points)
        for _ in range(math.ceil(seconds / STEP - 1e-9)):
            self._step()
        return self.points[before:]

    def states(self) -> dict:
        return dict(self._states)


class _At:
    """The scraper's clock: the simulation's current step end."""

    def __init__(self, sim: DashboardSim):
        self.sim = sim

    def now(self) -> float:
        return self.sim.now


def scripted_run(seed: int = 0, schedule=((0, "none"), (120, "errors"), (420, "none")), until: float = 780.0,
                 *, rate: float = 20.0) -> DashboardSim:
    """What a learner does in the panel, as a script: ``(time, fault)`` changes, then run to ``until``."""
    sim = DashboardSim(seed, rate=rate)
    changes = sorted(schedule)
    for k, (at, fault) in enumerate(changes):
        if at > sim.now:
            sim.advance(at - sim.now)
        sim.set_fault(fault)
        end = changes[k + 1][0] if k + 1 < len(changes) else until
        if end > sim.now:
            sim.advance(end - sim.now)
    return sim
