"""Virtual-time experiments of chapter 2, each returning its numbers and a verdict.

* ``breaker_timeline``: a failure burst (errors and slow calls) and recovery, called
  through the seed's consecutive-failure breaker or through the window breaker; the
  state timeline, per-call outcomes and what reached the failing service.
* ``retry_storm``: three hops (client -> frontend -> middle -> backend), each retrying;
  load amplification at the backend during an outage, naive retries against jittered
  retries with a budget.
* ``timeout_sweep``: availability and p99 latency as the per-try timeout varies.
* ``hedging``: tail latency with and without hedged requests, and the extra load.

Every function is deterministic for a seed (``random.Random(seed)`` on a ``SimNetwork``
under ``run_virtual``), takes well under a second, and imports no plotting library; the
figures are in ``workbook.labs.ch02_sync.figures``.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass

from workbook.core.params import check_int, check_number
from workbook.core.simnet import Response, SimNetwork
from workbook.core.virtual_time import run_virtual
from workbook.resilience.backoff import Backoff
from workbook.resilience.breaker import CircuitBreaker, State
from workbook.resilience.budget import RetryBudget
from workbook.resilience.deadline import Timeout
from workbook.resilience.errors import CallNotPermittedError, HTTPStatusError
from workbook.resilience.hedge import Hedge
from workbook.resilience.consecutive_breaker import ConsecutiveFailureBreaker
from workbook.resilience.retry import Retry
from workbook.transport.simcall import sim_call


def quantile(values, q: float) -> float:
    """The q-quantile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# ---------------------------------------------------------------------------------------
# (a) breaker timeline
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    """From ``start`` (s) on, the downstream fails ``failure_rate`` of calls (fast 503s) and
    answers ``slow_rate`` of the others after ``slow_latency`` seconds."""

    start: float
    failure_rate: float = 0.0
    slow_rate: float = 0.0


@dataclass
class BreakerRun:
    """One run: ``calls`` as (time, outcome, latency) with outcome ok / slow / failed /
    rejected (slow: longer than the window breaker's ``slow_call_duration_threshold``); ``transitions`` as (time, from, to); ``reached`` calls that reached the service."""

    label: str
    duration: float
    calls: list[tuple[float, str, float]]
    transitions: list[tuple[float, str, str]]
    reached_in_fault: int
    fault: tuple[float, float]
    max_half_open_admitted: int
    final_state: str

    def counts(self, start: float = 0.0, end: float = math.inf) -> dict[str, int]:
        out = {"ok": 0, "slow": 0, "failed": 0, "rejected": 0}
        for t, outcome, _ in self.calls:
            if start <= t < end:
                out[outcome] += 1
        return out

    def per_second(self, bin_size: float = 1.0) -> dict[str, list[int]]:
        bins = int(math.ceil(self.duration / bin_size))
        out = {k: [0] * bins for k in ("ok", "slow", "failed", "rejected")}
        for t, outcome, _ in self.calls:
            out[outcome][min(bins - 1, int(t // bin_size))] += 1
        return out

    def state_at(self, t: float) -> str:
        state = "CLOSED"
        for when, _, to in self.transitions:
            if when <= t:
                state = to
        return state

    def first_open_after(self, t: float) -> float | None:
        return next((w for w, _, to in self.transitions if to == "OPEN" and w >= t), None)

    def closed_after(self, t: float) -> float | None:
        return next((w for w, _, to in self.transitions if to == "CLOSED" and w >= t), None)


DEFAULT_PHASES = (Phase(0.0), Phase(20.0, failure_rate=0.1, slow_rate=0.8), Phase(50.0))
"""Healthy, then 30 s of a brownout (10 % fast 503s, 80 % of the rest answered after 2 s), then healthy."""


def breaker_timeline(kind: str = "window", *, phases=DEFAULT_PHASES, duration: float = 80.0, rate: float = 10.0,
                     seed: int = 0, slow_latency: float = 2.0, breaker_settings: dict | None = None,
                     seed_settings: dict | None = None) -> BreakerRun:
    """Drive ``rate`` calls/s (evenly spaced, open loop) through a breaker to a service on a
    ``SimNetwork`` whose faults follow ``phases``.

    ``kind="window"``: ``CircuitBreaker`` (defaults below, overridden by
    ``breaker_settings``); ``kind="seed"``: ``ConsecutiveFailureBreaker`` (``seed_settings``).
    """
    if kind not in ("window", "seed"):
        raise ValueError(f"parameter 'kind' = {kind!r} is not allowed: expected 'window' or 'seed'")
    duration = check_number("duration", duration, minimum=0, min_exclusive=True)
    rate = check_number("rate", rate, minimum=0, min_exclusive=True)
    settings = dict(failure_rate_threshold=50.0, slow_call_rate_threshold=50.0, slow_call_duration_threshold=1.0,
                    sliding_window_size=20, minimum_number_of_calls=10, wait_duration_in_open_state=5.0,
                    permitted_number_of_calls_in_half_open_state=3)
    settings.update(breaker_settings or {})
    slow_threshold = settings["slow_call_duration_threshold"]  # what "slow" means in the outcomes, for both kinds
    seed_cfg = dict(failure_threshold=5, recovery_timeout=5.0, success_threshold=3)
    seed_cfg.update(seed_settings or {})
    phases = sorted(phases, key=lambda p: p.start)
    faulty = [p for p in phases if p.failure_rate or p.slow_rate]
    fault = (faulty[0].start, next((p.start for p in phases if p.start > faulty[-1].start), duration)) if faulty \
        else (duration, duration)

    async def main():
        net = SimNetwork(seed, latency=0.002, keep_log=False)
        rng = random.Random(seed * 7919 + 1)
        loop = asyncio.get_running_loop()

        def phase_at(t):
            current = phases[0]
            for p in phases:
                if p.start <= t:
                    current = p
            return current

        async def handler(request):
            p = phase_at(loop.time())
            draw_fail, draw_slow = rng.random(), rng.random()
            if draw_fail < p.failure_rate:
                return Response(503, {"error": "unavailable", "message": "injected failure"})
            if draw_slow < p.slow_rate:
                await asyncio.sleep(slow_latency)
            else:
                await asyncio.sleep(rng.lognormvariate(math.log(0.05), 0.3))
            return {"stock": 7}

        net.add_service("inventory", handler)
        if kind == "window":
            breaker = CircuitBreaker("inventory", **settings)
        else:
            breaker = ConsecutiveFailureBreaker("inventory", **seed_cfg)
        transitions = []
        half_open_admitted = [0, 0]  # current half-open period, maximum

        def on_event(e):
            if e.kind == "state_transition":
                transitions.append((round(e.time, 6), e.from_state.value, e.to_state.value))
                if e.to_state is State.HALF_OPEN:
                    half_open_admitted[0] = 0

        breaker.subscribe(on_event)
        calls = []
        reached = [0]

        async def one(t0):
            if breaker.state is State.HALF_OPEN:
                pass
            try:
                token = breaker.acquire_permission()
            except CallNotPermittedError:
                calls.append((t0, "rejected", 0.0))
                return
            if breaker.state is State.HALF_OPEN:
                half_open_admitted[0] += 1
                half_open_admitted[1] = max(half_open_admitted[1], half_open_admitted[0])
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

        tasks = []
        n = int(duration * rate)
        start = loop.time()
        for i in range(n):
            t = start + i / rate
            if t > loop.time():
                await asyncio.sleep(t - loop.time())
            tasks.append(asyncio.ensure_future(one(round(i / rate, 6))))
        await asyncio.gather(*tasks)
        calls.sort(key=lambda c: c[0])
        return BreakerRun("window breaker" if kind == "window" else "seed breaker (consecutive failures)",
                          duration, calls, transitions, reached[0], fault, half_open_admitted[1],
                          breaker.state.value)

    return run_virtual(main())


@dataclass
class BreakerComparison:
    seed: BreakerRun
    window: BreakerRun

    def table(self) -> list[dict]:
        rows = []
        for run in (self.seed, self.window):
            c = run.counts(*run.fault)
            opened = run.first_open_after(run.fault[0])
            closed = run.closed_after(run.fault[1])
            rows.append({
                "breaker": run.label,
                "opened after (s)": None if opened is None or opened > run.fault[1] else round(opened - run.fault[0], 2),
                "closed after fault (s)": None if closed is None else round(closed - run.fault[1], 2),
                "reached failing service": run.reached_in_fault,
                "failed (users)": c["failed"],
                "slow (users)": c["slow"],
                "rejected fast": c["rejected"],
                "max admitted in one half-open": run.max_half_open_admitted,
            })
        return rows

    def summary(self) -> str:
        s, w = self.seed, self.window
        cs, cw = s.counts(*s.fault), w.counts(*w.fault)
        return (f"during the fault the window breaker let {w.reached_in_fault} calls reach the failing service "
                f"(seed breaker: {s.reached_in_fault}); users saw {cw['failed'] + cw['slow']} failed or slow calls "
                f"(seed breaker: {cs['failed'] + cs['slow']}); one half-open period admitted at most "
                f"{w.max_half_open_admitted} trial calls (seed breaker: {s.max_half_open_admitted})")


def breaker_study(seeds=range(5), **kw) -> tuple[list[dict], str]:
    """Run both breakers for several seeds; return one row per seed and breaker, and the verdict.

    A single run can flatter the seed breaker (a lucky streak of failures opens it); the
    verdict is about what holds across seeds: the window breaker opens on *every* seed and
    lets fewer calls reach the failing service on average, and its half-open periods never
    admit more than the permitted trials.
    """
    rows, opened = [], {"seed": 0, "window": 0}
    reached = {"seed": 0, "window": 0}
    max_trials = {"seed": 0, "window": 0}
    seeds = list(seeds)
    for sd in seeds:
        comparison = compare_breakers(sd, **kw)
        for key, run in (("seed", comparison.seed), ("window", comparison.window)):
            t_open = run.first_open_after(run.fault[0])
            did_open = t_open is not None and t_open < run.fault[1]
            opened[key] += did_open
            reached[key] += run.reached_in_fault
            max_trials[key] = max(max_trials[key], run.max_half_open_admitted)
            c = run.counts(*run.fault)
            rows.append({"seed": sd, "breaker": key, "opened": did_open, "reached": run.reached_in_fault,
                         "failed": c["failed"], "slow": c["slow"], "rejected": c["rejected"],
                         "max half-open admitted": run.max_half_open_admitted})
    permitted = (kw.get("breaker_settings") or {}).get("permitted_number_of_calls_in_half_open_state", 3)
    n = len(seeds)
    ok = opened["window"] == n and reached["window"] < reached["seed"] and max_trials["window"] <= permitted
    verdict = ("PASS" if ok else "FAIL") + (
        f": over {n} seeds the window breaker opened in {opened['window']}/{n} runs, the seed breaker in "
        f"{opened['seed']}/{n}; calls reaching the failing service per run: {reached['window'] / n:.0f} vs "
        f"{reached['seed'] / n:.0f}; most calls admitted in one half-open period: {max_trials['window']} "
        f"(limit {permitted}) vs {max_trials['seed']} (no limit).")
    return rows, verdict


def compare_breakers(seed: int = 0, **kw) -> BreakerComparison:
    return BreakerComparison(breaker_timeline("seed", seed=seed, **kw), breaker_timeline("window", seed=seed, **kw))


# ---------------------------------------------------------------------------------------
# (b) retry storm across three hops
# ---------------------------------------------------------------------------------------

@dataclass
class StormRun:
    label: str
    client_requests: int
    arrivals: dict[str, int]
    arrivals_in_outage: dict[str, int]
    client_requests_in_outage: int
    backend_per_second: list[int]
    succeeded: int

    @property
    def amplification(self) -> float:
        """Backend requests per client request during the outage."""
        return self.arrivals_in_outage["backend"] / max(1, self.client_requests_in_outage)


HOPS = ("frontend", "middle", "backend")


def retry_storm(mode: str = "naive", *, seed: int = 0, rate: float = 20.0, duration: float = 30.0,
                outage: tuple[float, float] = (10.0, 20.0), attempts: int = 3,
                budget_percent: float = 20.0) -> StormRun:
    """client -> frontend -> middle -> backend; the backend fails every call during ``outage``.

    ``mode="naive"``: every hop retries up to ``attempts`` times with a fixed 50 ms wait
    (the seed's way, without jitter or budget); ``mode="budget"``: full-jitter exponential
    backoff and a ``RetryBudget`` of ``budget_percent`` (default 20 %, min 3 retries per
    10 s) at every hop.
    """
    if mode not in ("naive", "budget"):
        raise ValueError(f"parameter 'mode' = {mode!r} is not allowed: expected 'naive' or 'budget'")
    attempts = check_int("attempts", attempts, minimum=1)
    budget_percent = check_number("budget_percent", budget_percent, minimum=0, maximum=100)

    async def main():
        net = SimNetwork(seed, latency=0.002, keep_log=False)
        loop = asyncio.get_running_loop()
        arrivals = {h: [] for h in HOPS}
        counts_client = []

        def make_retry(i):
            if mode == "naive":
                return Retry(attempts, Backoff(0.05, 1.0, 0.05, "none"))
            return Retry(attempts, Backoff(0.05, 2.0, 1.0, "full"), rng=random.Random(seed * 31 + i),
                         budget=RetryBudget(budget_percent, min_retries=3, window=10.0))

        retries = {h: make_retry(i) for i, h in enumerate(("client",) + HOPS[:-1])}

        def forwarder(me, nxt):
            async def handler(request):
                arrivals[me].append(loop.time())
                try:
                    await retries[me].call_async(sim_call, net, me, nxt, "/work", timeout=2.0)
                except Exception as exc:
                    return Response(503, {"error": "upstream_failed", "message": f"{nxt}: {type(exc).__name__}"})
                return {"ok": True}
            return handler

        async def backend(request):
            t = loop.time()
            arrivals["backend"].append(t)
            await asyncio.sleep(0.01)
            if outage[0] <= t < outage[1]:
                return Response(503, {"error": "unavailable", "message": "backend outage"})
            return {"ok": True}

        net.add_service("frontend", forwarder("frontend", "middle"))
        net.add_service("middle", forwarder("middle", "backend"))
        net.add_service("backend", backend)
        ok = [0]

        async def client_call(t0):
            counts_client.append(t0)
            try:
                await retries["client"].call_async(sim_call, net, "client", "frontend", "/work", timeout=5.0)
                ok[0] += 1
            except Exception:
                pass

        tasks = []
        n = int(duration * rate)
        for i in range(n):
            t = i / rate
            if t > loop.time():
                await asyncio.sleep(t - loop.time())
            tasks.append(asyncio.ensure_future(client_call(t)))
        await asyncio.gather(*tasks)
        in_outage = {h: sum(1 for t in ts if outage[0] <= t < outage[1]) for h, ts in arrivals.items()}
        per_second = [0] * int(math.ceil(duration + 2))
        for t in arrivals["backend"]:
            per_second[min(len(per_second) - 1, int(t))] += 1
        return StormRun("naive retries (3 per hop, no jitter, no budget)" if mode == "naive"
                        else f"jittered retries with a {budget_percent:g} % budget", n, {h: len(v) for h, v in arrivals.items()},
                        in_outage, sum(1 for t in counts_client if outage[0] <= t < outage[1]), per_second, ok[0])

    return run_virtual(main())


def storm_verdict(naive: StormRun, budget: StormRun) -> str:
    ok = budget.amplification < naive.amplification / 5 and budget.amplification <= 2.0
    return ("PASS" if ok else "FAIL") + (
        f": during the outage each client request became {naive.amplification:.1f} backend requests with naive "
        f"retries (3 hops x 3 attempts: up to 27) and {budget.amplification:.2f} with jittered retries and a budget; "
        f"outside the outage both succeed ({naive.succeeded} vs {budget.succeeded} of {naive.client_requests}).")


# ---------------------------------------------------------------------------------------
# (c) timeouts: availability and p99 as the per-try timeout varies
# ---------------------------------------------------------------------------------------

@dataclass
class TimeoutPoint:
    timeout: float
    availability: float
    p50: float
    p99: float
    load: float  # tries per request


def timeout_sweep(timeouts=(0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2), *, seed: int = 0, requests: int = 2000,
                  attempts: int = 2, overall: float = 4.0) -> list[TimeoutPoint]:
    """A service answering in ~lognormal(30 ms) time, 4 % of calls stalling 2-5 s and 1 % hanging
    for 60 s; the client makes up to ``attempts`` tries (per-try timeout, no backoff) within
    ``overall`` seconds. Availability = share answered within ``overall``."""
    requests = check_int("requests", requests, minimum=1)
    points = []
    for timeout in timeouts:
        check_number("timeout", timeout, minimum=0, min_exclusive=True)

        async def main(timeout=timeout):
            rng = random.Random(seed)
            net = SimNetwork(seed, latency=0.001, keep_log=False)
            loop = asyncio.get_running_loop()

            async def handler(request):
                u = rng.random()
                if u < 0.01:
                    await asyncio.sleep(60)
                elif u < 0.05:
                    await asyncio.sleep(rng.uniform(2, 5))
                else:
                    await asyncio.sleep(rng.lognormvariate(math.log(0.03), 0.5))
                return {"ok": True}

            net.add_service("svc", handler)
            per_try = Timeout(timeout)
            retry = Retry(attempts, Backoff(0.0, 1, 0, "none"))
            latencies, tries = [], [0]

            async def attempt():
                tries[0] += 1
                return await per_try.call_async(sim_call, net, "client", "svc", "/")

            async def one(i):
                await asyncio.sleep(i * 0.01)
                start = loop.time()
                try:
                    async with asyncio.timeout(overall):
                        await retry.call_async(attempt)
                    latencies.append(loop.time() - start)
                except Exception:
                    latencies.append(math.inf)

            await asyncio.gather(*(one(i) for i in range(requests)))
            done = [x for x in latencies if x != math.inf]
            return TimeoutPoint(timeout, len(done) / requests, quantile(latencies, 0.5), quantile(latencies, 0.99),
                                tries[0] / requests)

        points.append(run_virtual(main()))
    return points


def best_timeout(points: list[TimeoutPoint], tolerance: float = 0.005) -> TimeoutPoint:
    """The point with the lowest p99 among those within ``tolerance`` of the best availability."""
    top = max(p.availability for p in points)
    return min((p for p in points if p.availability >= top - tolerance), key=lambda p: (p.p99, p.timeout))


def timeout_verdict(points: list[TimeoutPoint]) -> str:
    best = best_timeout(points)
    shortest, longest = points[0], points[-1]
    ok = best is not shortest and best is not longest and best.p99 < longest.p99
    return ("PASS" if ok else "FAIL") + (
        f": a {shortest.timeout * 1000:g} ms timeout cuts healthy calls (availability {shortest.availability:.1%}, "
        f"{shortest.load:.2f} tries per request); a {longest.timeout:g} s timeout waits out stalls "
        f"(p99 {longest.p99:.2f} s); {best.timeout * 1000:g} ms keeps availability at {best.availability:.1%} "
        f"with p99 {best.p99 * 1000:.0f} ms.")


# ---------------------------------------------------------------------------------------
# (d) hedging
# ---------------------------------------------------------------------------------------

@dataclass
class HedgeRun:
    label: str
    latencies: list[float]
    sent: int
    requests: int

    @property
    def load(self) -> float:
        return self.sent / self.requests

    def q(self, p: float) -> float:
        return quantile(self.latencies, p)


def hedging(delay: float | None = None, *, seed: int = 0, requests: int = 4000, p_slow: float = 0.05) -> HedgeRun:
    """Latency: lognormal(20 ms) with probability 1 - p_slow, else 0.3-1.0 s (a GC pause, a
    cold cache). ``delay=None``: no hedging; else one hedge after ``delay`` seconds."""
    requests = check_int("requests", requests, minimum=1)

    async def main():
        rng = random.Random(seed)
        net = SimNetwork(seed, latency=0.0005, keep_log=False)
        loop = asyncio.get_running_loop()

        async def handler(request):
            if rng.random() < p_slow:
                await asyncio.sleep(rng.uniform(0.3, 1.0))
            else:
                await asyncio.sleep(rng.lognormvariate(math.log(0.02), 0.4))
            return {"ok": True}

        net.add_service("svc", handler)
        hedge = Hedge(delay if delay is not None else 0.0, max_hedges=1 if delay is not None else 0)
        latencies = []

        async def one(i):
            await asyncio.sleep(i * 0.005)
            start = loop.time()
            await hedge.call_async(sim_call, net, "client", "svc", "/")
            latencies.append(loop.time() - start)

        await asyncio.gather(*(one(i) for i in range(requests)))
        label = "no hedging" if delay is None else f"hedge after {delay * 1000:g} ms"
        return HedgeRun(label, latencies, hedge.sent, requests)

    return run_virtual(main())


def hedging_verdict(plain: HedgeRun, hedged: HedgeRun) -> str:
    ok = hedged.q(0.99) < plain.q(0.99) / 3 and hedged.load < 1.15
    return ("PASS" if ok else "FAIL") + (
        f": p99 {plain.q(0.99) * 1000:.0f} ms -> {hedged.q(0.99) * 1000:.0f} ms, p50 {plain.q(0.5) * 1000:.1f} ms -> "
        f"{hedged.q(0.5) * 1000:.1f} ms, for {100 * (hedged.load - 1):.1f} % extra requests.")


def half_open_flood(callers: int = 50, *, permitted: int = 3, trial_latency: float = 2.0) -> dict[str, int]:
    """Both breakers just past their wait in OPEN; ``callers`` arrive together at a service that
    answers after ``trial_latency`` s. How many reach the (recovering) service?"""
    callers = check_int("callers", callers, minimum=1)

    async def main():
        out = {}
        for key, breaker in (("seed", ConsecutiveFailureBreaker("seed", failure_threshold=1, recovery_timeout=1.0)),
                             ("window", CircuitBreaker("window", wait_duration_in_open_state=1.0,
                                                       permitted_number_of_calls_in_half_open_state=permitted))):
            if key == "seed":
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


def check_breaker_exercise(settings: dict, *, seed: int = 0, max_reached: int = 60, max_detect: float = 5.0) -> str:
    """Exercise checker: do these breaker settings detect the default brownout within
    ``max_detect`` seconds, let at most ``max_reached`` calls reach the failing service, and
    stay CLOSED while the service is healthy? Prints and returns the verdict."""
    try:
        run = breaker_timeline("window", seed=seed, breaker_settings=settings)
    except (ValueError, TypeError) as exc:
        verdict = f"FAIL: the settings are not valid: {type(exc).__name__}: {exc}"
        print(verdict)
        return verdict
    opened = run.first_open_after(run.fault[0])
    early = [t for t, _, to in run.transitions if to == "OPEN" and t < run.fault[0]]
    problems = []
    if early:
        problems.append(f"opened at t={early[0]:g} s while the service was healthy")
    if opened is None or opened - run.fault[0] > max_detect:
        problems.append("did not open within "
                        f"{max_detect:g} s of the fault" + ("" if opened is None else f" (took {opened - run.fault[0]:.1f} s)"))
    if run.reached_in_fault > max_reached:
        problems.append(f"{run.reached_in_fault} calls reached the failing service (allowed {max_reached})")
    verdict = ("PASS: " + f"opened {opened - run.fault[0]:.1f} s into the fault, {run.reached_in_fault} calls "
               "reached the failing service") if not problems else "FAIL: " + "; ".join(problems)
    print(verdict)
    return verdict
