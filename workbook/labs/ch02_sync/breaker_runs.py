"""Experiment (a): a breaker in front of a service that browns out, in virtual time.

``breaker_timeline(kind, config=..., scenario=..., seed=...)`` drives open-loop traffic
through one breaker to a simulated service whose behaviour follows the scenario's phases:

* ``kind="sliding_window"``: our ``CircuitBreaker`` (resilience4j semantics), settings
  given as a ``CircuitBreakerConfig`` (default ``WINDOW_CONFIG``);
* ``kind="consecutive_failure"``: the source article's breaker (``ConsecutiveFailureBreaker``:
  only failures in a row count, half-open admits everyone), settings given as a
  ``ConsecutiveFailureConfig`` (default ``CONSECUTIVE_CONFIG``).

The result (``BreakerRun``) holds every call's outcome, the state transitions and how many
calls reached the service while it was failing. ``compare_breakers`` and ``breaker_study``
run both kinds on the same traffic; ``half_open_flood`` isolates the half-open defect.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from workbook.core.errors import ParameterError
from workbook.core.load import open_loop
from workbook.core.params import check_choice, check_int, check_number
from workbook.core.seeds import derive_seed, stream
from workbook.core.simnet import Response, SimNetwork
from workbook.core.verdict import Verdict
from workbook.core.virtual_time import run_virtual
from workbook.resilience import (CallNotPermittedError, CircuitBreaker, CircuitBreakerConfig, ConsecutiveFailureBreaker,
                                 HTTPStatusError, State)
from workbook.transport.simcall import sim_call

KINDS = ("sliding_window", "consecutive_failure")
OUTCOMES = ("ok", "slow", "failed", "rejected")


@dataclass(frozen=True)
class Phase:
    """From ``start`` (s) on: ``failure_rate`` of the calls get a fast 503; ``slow_rate`` of
    the others take ``slow_latency`` s; the rest take lognormal(``median``, ``sigma``) s.

    ``fault`` marks the phase as the injected fault (default: any failures or slow calls);
    a healthy phase with background noise passes ``fault=False``.
    """

    start: float
    failure_rate: float = 0.0
    slow_rate: float = 0.0
    slow_latency: float = 2.0
    median: float = 0.05
    sigma: float = 0.3
    fault: bool | None = None

    def __post_init__(self):
        check_number("start", self.start, minimum=0)
        check_number("failure_rate", self.failure_rate, minimum=0, maximum=1)
        check_number("slow_rate", self.slow_rate, minimum=0, maximum=1)
        check_number("slow_latency", self.slow_latency, minimum=0)
        check_number("median", self.median, minimum=0, min_exclusive=True)
        check_number("sigma", self.sigma, minimum=0)
        if self.fault is None:
            object.__setattr__(self, "fault", bool(self.failure_rate or self.slow_rate))


@dataclass(frozen=True)
class Scenario:
    """Traffic (``rate`` calls/s, evenly spaced, for ``duration`` s) and the service's phases."""

    phases: tuple[Phase, ...]
    duration: float = 80.0
    rate: float = 10.0

    def __post_init__(self):
        check_number("duration", self.duration, minimum=0, min_exclusive=True)
        check_number("rate", self.rate, minimum=0, min_exclusive=True)
        if not self.phases:
            raise ParameterError("phases", self.phases, "at least one Phase")
        object.__setattr__(self, "phases", tuple(sorted(self.phases, key=lambda p: p.start)))

    @property
    def fault(self) -> tuple[float, float]:
        """(start, end) of the first run of fault phases; (duration, duration) without one."""
        starts = [p.start for p in self.phases] + [self.duration]
        window = None
        for i, p in enumerate(self.phases):
            if p.fault and window is None:
                window = [p.start, starts[i + 1]]
            elif p.fault and window is not None and window[1] == p.start:
                window[1] = starts[i + 1]
        return (min(window[0], self.duration), min(window[1], self.duration)) if window else \
            (self.duration, self.duration)

    def phase_at(self, t: float) -> Phase:
        current = self.phases[0]
        for p in self.phases:
            if p.start <= t:
                current = p
        return current


BROWNOUT = Scenario((Phase(0.0), Phase(20.0, failure_rate=0.1, slow_rate=0.8), Phase(50.0)))
"""Healthy, then 30 s of a brownout (10 % fast 503s, 80 % of the rest answered after 2 s), then healthy."""

HEALTHY = Scenario((Phase(0.0),), duration=30.0)


@dataclass(frozen=True)
class ConsecutiveFailureConfig:
    """Settings of the article's breaker: open after ``failure_threshold`` failures in a row,
    try again ``recovery_timeout`` s after the last failure, close after ``success_threshold``
    successes."""

    failure_threshold: int = 5
    recovery_timeout: float = 5.0
    success_threshold: int = 3

    def __post_init__(self):
        check_int("failure_threshold", self.failure_threshold, minimum=1)
        check_number("recovery_timeout", self.recovery_timeout, minimum=0)
        check_int("success_threshold", self.success_threshold, minimum=1)


WINDOW_CONFIG = CircuitBreakerConfig(
    failure_rate_threshold=50.0, slow_call_rate_threshold=50.0, slow_call_duration_threshold=1.0,
    sliding_window_size=20, minimum_number_of_calls=10, wait_duration_in_open_state=5.0,
    permitted_number_of_calls_in_half_open_state=3)
"""The sliding-window breaker of the experiments: 20 calls, 50 % failures or 50 % calls over 1 s."""

CONSECUTIVE_CONFIG = ConsecutiveFailureConfig()
"""The article's breaker as the experiments run it: 5 failures in a row, 5 s, 3 successes."""


def build_breaker(kind: str, config, name: str = "inventory"):
    """The breaker of ``kind`` built from ``config`` (None: the default config of that kind)."""
    check_choice("kind", kind, KINDS)
    if kind == "sliding_window":
        config = WINDOW_CONFIG if config is None else config
        if not isinstance(config, CircuitBreakerConfig):
            raise ParameterError("config", config, "a CircuitBreakerConfig for kind='sliding_window'")
        return CircuitBreaker(name, config=config)
    config = CONSECUTIVE_CONFIG if config is None else config
    if not isinstance(config, ConsecutiveFailureConfig):
        raise ParameterError("config", config, "a ConsecutiveFailureConfig for kind='consecutive_failure'")
    return ConsecutiveFailureBreaker(name, failure_threshold=config.failure_threshold,
                                     recovery_timeout=config.recovery_timeout,
                                     success_threshold=config.success_threshold)


def kind_of(config) -> str:
    """``consecutive_failure`` for a ``ConsecutiveFailureConfig``, else ``sliding_window``."""
    return "consecutive_failure" if isinstance(config, ConsecutiveFailureConfig) else "sliding_window"


@dataclass
class BreakerRun:
    """One run. ``calls``: (time, outcome, latency), outcome ok / slow / failed / rejected
    (slow: longer than ``slow_threshold``); ``transitions``: (time, from, to);
    ``reached_in_fault``: calls that reached the service during the fault."""

    label: str
    kind: str
    duration: float
    calls: list[tuple[float, str, float]]
    transitions: list[tuple[float, str, str]]
    reached_in_fault: int
    fault: tuple[float, float]
    max_half_open_admitted: int
    final_state: str
    slow_threshold: float

    def counts(self, start: float = 0.0, end: float = math.inf) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for t, outcome, _ in self.calls:
            if start <= t < end:
                out[outcome] += 1
        return out

    def per_second(self, bin_size: float = 1.0) -> dict[str, list[int]]:
        bins = int(math.ceil(self.duration / bin_size))
        out = {k: [0] * bins for k in OUTCOMES}
        for t, outcome, _ in self.calls:
            out[outcome][min(bins - 1, int(t // bin_size))] += 1
        return out

    def state_at(self, t: float) -> str:
        state = "CLOSED"
        for when, _, to in self.transitions:
            if when <= t:
                state = to
        return state

    def openings(self, start: float = 0.0, end: float = math.inf) -> list[float]:
        """Times at which the breaker went OPEN within [start, end)."""
        return [w for w, _, to in self.transitions if to == "OPEN" and start <= w < end]

    def first_open_after(self, t: float) -> float | None:
        return next(iter(self.openings(t)), None)

    def closed_after(self, t: float) -> float | None:
        return next((w for w, _, to in self.transitions if to == "CLOSED" and w >= t), None)

    @property
    def detection(self) -> float | None:
        """Seconds from the fault's start to the first opening during it; None if it never opened then."""
        opened = self.first_open_after(self.fault[0])
        return None if opened is None or opened >= self.fault[1] else opened - self.fault[0]


def breaker_timeline(kind: str = "sliding_window", *, config=None, scenario: Scenario = BROWNOUT,
                     seed: int = 0) -> BreakerRun:
    """Drive ``scenario``'s traffic through a breaker of ``kind`` (see the module docstring)."""
    breaker = build_breaker(kind, config)
    if not isinstance(scenario, Scenario):
        raise ParameterError("scenario", scenario, "a Scenario")
    check_int("seed", seed, minimum=0)
    slow_threshold = (config or WINDOW_CONFIG).slow_call_duration_threshold if kind == "sliding_window" \
        else WINDOW_CONFIG.slow_call_duration_threshold  # what "slow" means in the outcomes
    fault = scenario.fault

    async def main():
        net = SimNetwork(derive_seed(seed, "breaker", "network"), latency=0.002, keep_log=False)
        rng = stream(seed, "breaker", "service")
        loop = asyncio.get_running_loop()

        async def handler(request):
            p = scenario.phase_at(loop.time())
            draw_fail, draw_slow = rng.random(), rng.random()
            if draw_fail < p.failure_rate:
                return Response(503, {"error": "unavailable", "message": "injected failure"})
            if draw_slow < p.slow_rate:
                await asyncio.sleep(p.slow_latency)
            else:
                await asyncio.sleep(rng.lognormvariate(math.log(p.median), p.sigma))
            return {"stock": 7}

        net.add_service("inventory", handler)
        transitions = []
        half_open = [0, 0]  # admitted in the current half-open period, most in any

        def on_event(e):
            if e.kind == "state_transition":
                transitions.append((round(e.time, 6), e.from_state.value, e.to_state.value))
                if e.to_state is State.HALF_OPEN:
                    half_open[0] = 0

        breaker.subscribe(on_event)
        calls = []
        reached = [0]

        async def one(i):
            t0 = round(i / scenario.rate, 6)
            try:
                token = breaker.acquire_permission()
            except CallNotPermittedError:
                calls.append((t0, "rejected", 0.0))
                return
            if breaker.state is State.HALF_OPEN:
                half_open[0] += 1
                half_open[1] = max(half_open[1], half_open[0])
            if fault[0] <= t0 < fault[1]:
                reached[0] += 1
            start = loop.time()
            try:
                result = await sim_call(net, "shop", "inventory", "/stock")
            except HTTPStatusError as exc:
                latency = loop.time() - start
                breaker.on_error(token, latency, exc)
                calls.append((t0, "failed", latency))
                return
            latency = loop.time() - start
            breaker.on_success(token, latency, result)
            calls.append((t0, "slow" if latency > slow_threshold else "ok", latency))

        await open_loop(one, rate=scenario.rate, duration=scenario.duration)
        calls.sort(key=lambda c: c[0])
        label = "sliding-window breaker" if kind == "sliding_window" else "article's breaker (consecutive failures)"
        return BreakerRun(label, kind, scenario.duration, calls, transitions, reached[0], fault, half_open[1],
                          breaker.state.value, slow_threshold)

    return run_virtual(main())


@dataclass
class BreakerComparison:
    consecutive: BreakerRun
    window: BreakerRun

    def table(self) -> list[dict]:
        rows = []
        for run in (self.consecutive, self.window):
            c = run.counts(*run.fault)
            closed = run.closed_after(run.fault[1])
            rows.append({
                "breaker": run.label,
                "opened after (s)": None if run.detection is None else round(run.detection, 2),
                "closed after fault (s)": None if closed is None else round(closed - run.fault[1], 2),
                "reached failing service": run.reached_in_fault,
                "failed (users)": c["failed"],
                "slow (users)": c["slow"],
                "rejected fast": c["rejected"],
                "max admitted in one half-open": run.max_half_open_admitted,
            })
        return rows

    def summary(self) -> str:
        n, w = self.consecutive, self.window
        cn, cw = n.counts(*n.fault), w.counts(*w.fault)
        return (f"during the fault the sliding-window breaker let {w.reached_in_fault} calls reach the failing "
                f"service (article's breaker: {n.reached_in_fault}); users saw {cw['failed'] + cw['slow']} failed or "
                f"slow calls (article's breaker: {cn['failed'] + cn['slow']}); one half-open period admitted at most "
                f"{w.max_half_open_admitted} trial calls (article's breaker: {n.max_half_open_admitted})")


def compare_breakers(seed: int = 0, *, scenario: Scenario = BROWNOUT, window_config: CircuitBreakerConfig = None,
                     consecutive_config: ConsecutiveFailureConfig = None) -> BreakerComparison:
    return BreakerComparison(
        breaker_timeline("consecutive_failure", config=consecutive_config, scenario=scenario, seed=seed),
        breaker_timeline("sliding_window", config=window_config, scenario=scenario, seed=seed))


def breaker_study(seeds=range(5), *, scenario: Scenario = BROWNOUT,
                  window_config: CircuitBreakerConfig | None = None) -> tuple[list[dict], Verdict]:
    """Run both breakers for several seeds; one row per seed and breaker, and the verdict.

    A single run can flatter the article's breaker (a lucky streak of failures opens it);
    the verdict is about what holds across seeds: the sliding-window breaker opens on
    *every* seed, lets fewer calls reach the failing service on average, and its half-open
    periods never admit more than the permitted trials.
    """
    window_config = window_config or WINDOW_CONFIG
    seeds = list(seeds)
    if not seeds:
        raise ParameterError("seeds", seeds, "at least one seed")
    rows = []
    for sd in seeds:
        comparison = compare_breakers(sd, scenario=scenario, window_config=window_config)
        for key, run in (("consecutive_failure", comparison.consecutive), ("sliding_window", comparison.window)):
            c = run.counts(*run.fault)
            rows.append({"seed": sd, "breaker": key, "opened": run.detection is not None,
                         "reached": run.reached_in_fault, "failed": c["failed"], "slow": c["slow"],
                         "rejected": c["rejected"], "max half-open admitted": run.max_half_open_admitted})
    n = len(seeds)

    def total(key, field):
        return sum(r[field] for r in rows if r["breaker"] == key)

    permitted = window_config.permitted_number_of_calls_in_half_open_state
    w_open, c_open = total("sliding_window", "opened"), total("consecutive_failure", "opened")
    w_reach, c_reach = total("sliding_window", "reached") / n, total("consecutive_failure", "reached") / n
    w_trials = max(r["max half-open admitted"] for r in rows if r["breaker"] == "sliding_window")
    c_trials = max(r["max half-open admitted"] for r in rows if r["breaker"] == "consecutive_failure")
    verdict = Verdict.of(f"sliding-window breaker against the article's breaker over {n} seeds", [
        ("opens on every seed", w_open == n, f"sliding window {w_open}/{n}, article's {c_open}/{n}"),
        ("fewer calls reach the failing service", w_reach < c_reach,
         f"{w_reach:.0f} vs {c_reach:.0f} per run"),
        ("half-open admits at most the permitted trials", w_trials <= permitted,
         f"at most {w_trials} (limit {permitted}); article's breaker: {c_trials} (no limit)"),
    ], numbers={"opened": {"sliding_window": w_open, "consecutive_failure": c_open},
                "reached_per_run": {"sliding_window": w_reach, "consecutive_failure": c_reach}})
    return rows, verdict


def half_open_flood(callers: int = 50, *, permitted: int = 3, trial_latency: float = 2.0) -> dict[str, int]:
    """Both breakers just past their wait in OPEN; ``callers`` arrive together at a service that
    answers after ``trial_latency`` s. How many reach the (recovering) service?"""
    callers = check_int("callers", callers, minimum=1)

    async def main():
        out = {}
        breakers = (("consecutive_failure", ConsecutiveFailureBreaker("article", failure_threshold=1,
                                                                      recovery_timeout=1.0)),
                    ("sliding_window", CircuitBreaker("window", wait_duration_in_open_state=1.0,
                                                      permitted_number_of_calls_in_half_open_state=permitted)))
        for key, breaker in breakers:
            if key == "consecutive_failure":
                try:
                    await breaker.call_async(_fail_once)
                except ConnectionError:
                    pass
            else:
                breaker.transition_to_open()
            await asyncio.sleep(1.5)
            reached = 0

            async def service():
                nonlocal reached
                reached += 1
                await asyncio.sleep(trial_latency)

            async def caller():
                try:
                    await breaker.call_async(service)
                except CallNotPermittedError:
                    pass

            await asyncio.gather(*(caller() for _ in range(callers)))
            out[key] = reached
        return out

    return run_virtual(main())


async def _fail_once():
    raise ConnectionError("down")
