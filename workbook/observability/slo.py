"""An availability SLO, its error budget, and the SRE Workbook's ways of alerting on it, compared.

``SLO(objective=0.999, window_days=30)``: the error budget is ``1 - objective`` of the
requests in the window; the **burn rate** is the error ratio divided by that budget ratio
(burn rate 1 spends the budget exactly over the window; 14.4 spends 2% of a 30-day
budget in one hour).

``APPROACHES`` are the six alerting strategies of the Google SRE Workbook, chapter 5
"Alerting on SLOs" (https://sre.google/workbook/alerting-on-slos/), each a list of
``(long window, short window or None, burn-rate factor, severity)`` conditions OR-ed together,
and an optional ``for`` duration; as in the book, the slow tiers (1x over 3 days) open a
**ticket**, everything else **pages**:

1. target error rate >= SLO threshold over 10 minutes;
2. increased alert window: 36 hours;
3. incrementing alert duration: a 1-minute window that must hold for 1 hour;
4. alert on burn rate: 36x over 1 hour;
5. multiple burn rates: 14.4x over 1 h, 6x over 6 h, 1x over 3 days;
6. multiwindow, multi-burn-rate: the same, each AND-ed with a short window (5 min, 30 min,
   6 h) that is 1/12 of the long one, so the alert resets soon after the incident ends.

``simulate_traffic`` makes per-minute request and error counts for days of traffic (a
steady load with a baseline error ratio, binomial noise from a seeded stream, and
incidents); ``evaluate_approach`` evaluates one approach every minute over it (window
ratios from prefix sums: ``increase`` without extrapolation, as on a dense 1-minute
series); ``compare`` scores every approach on the same incidents: **detection time**
(incident start to the first page, significant incidents), **reset time** (incident end to
the page stopping), **false pages** (paging episodes that begin while no significant
incident is under way), significant incidents **ticketed only** (no page, but a ticket
during the incident) and **missed** (neither), false tickets, and the minutes spent paging
while no significant incident was under way. An incident is significant when
it spends at least ``significant_budget`` (2%) of the window's budget: what the book
says is worth a page.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from itertools import accumulate

from workbook.core.params import check_int, check_number
from workbook.core.seeds import stream
from workbook.core.stats import quantile
from workbook.observability.errors import ObservabilityError

__all__ = ["SLO", "Approach", "APPROACHES", "Incident", "Traffic", "simulate_traffic", "generate_incidents",
           "evaluate_approach", "episodes", "compare", "burn_rate"]

MINUTE = 60


@dataclass(frozen=True)
class SLO:
    objective: float = 0.999
    window_days: int = 30

    def __post_init__(self):
        check_number("objective", self.objective, minimum=0, maximum=1, min_exclusive=True, max_exclusive=True)
        check_int("window_days", self.window_days, minimum=1)

    @property
    def budget_ratio(self) -> float:
        return 1 - self.objective

    def error_budget(self, total_requests: float) -> float:
        """The number of failed requests the SLO allows out of ``total_requests``."""
        return self.budget_ratio * total_requests

    def burn_rate_for(self, budget_fraction: float, hours: float) -> float:
        """The burn rate that spends ``budget_fraction`` of the budget in ``hours`` (2%, 1 h -> 14.4)."""
        return budget_fraction * self.window_days * 24 / hours


def burn_rate(error_ratio: float, slo: SLO) -> float:
    return error_ratio / slo.budget_ratio


@dataclass(frozen=True)
class Approach:
    """OR of ``(long_minutes, short_minutes or None, factor, severity)`` conditions; fires after ``for_minutes``."""

    name: str
    conditions: tuple
    for_minutes: int = 0

    def promql(self, slo: SLO, ratio: str = "slo:error_ratio:rate{w}") -> str:
        """The condition as PromQL over recording rules named by window (``slo:error_ratio:rate1h``...)."""
        def w(minutes):
            return f"{minutes // 1440}d" if minutes % 1440 == 0 else (
                f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m")
        parts = []
        for long_m, short_m, factor, _ in self.conditions:
            threshold = f"{factor} * {slo.budget_ratio:.6g}"
            part = f"{ratio.format(w=w(long_m))} > ({threshold})"
            if short_m:
                part = f"({part} and {ratio.format(w=w(short_m))} > ({threshold}))"
            parts.append(part)
        return " or ".join(parts)


APPROACHES = (
    Approach("1 target error rate (10m)", ((10, None, 1.0, "page"),)),
    Approach("2 longer window (36h)", ((36 * 60, None, 1.0, "page"),)),
    Approach("3 incrementing duration (1m for 1h)", ((1, None, 1.0, "page"),), for_minutes=60),
    Approach("4 burn rate (36x over 1h)", ((60, None, 36.0, "page"),)),
    Approach("5 multiple burn rates", ((60, None, 14.4, "page"), (360, None, 6.0, "page"),
                                       (4320, None, 1.0, "ticket"))),
    Approach("6 multiwindow multi-burn-rate", ((60, 5, 14.4, "page"), (360, 30, 6.0, "page"),
                                               (4320, 360, 1.0, "ticket"))),
)


@dataclass(frozen=True)
class Incident:
    """Errors at ``error_ratio`` from minute ``start`` for ``minutes`` minutes; ``kind`` names it."""

    start: int
    minutes: int
    error_ratio: float
    kind: str = "incident"

    @property
    def end(self) -> int:
        return self.start + self.minutes


@dataclass
class Traffic:
    requests: list[int]
    errors: list[int]
    incidents: list[Incident]
    slo: SLO
    significant: list[bool] = field(default_factory=list)

    def budget_spent(self, incident: Incident) -> float:
        """The share of the window's error budget this incident's excess errors spent."""
        total = sum(self.requests) * self.slo.window_days * 1440 / len(self.requests)
        errs = sum(self.errors[incident.start:incident.end])
        return errs / self.slo.error_budget(total)


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if p <= 0 or n <= 0:
        return 0
    if p >= 1:
        return n
    if n * p < 30:  # inversion on the binomial distribution
        q = 1 - p
        prob = q ** n
        cumulative, k, u = prob, 0, rng.random()
        while u > cumulative and k < n:
            prob *= (n - k) / (k + 1) * p / q
            k += 1
            cumulative += prob
        return k
    if n * (1 - p) < 30:
        return n - _binomial(rng, n, 1 - p)
    x = round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))
    return min(n, max(0, x))


_KINDS = {
    # kind: (minutes range, error ratio range)
    "outage": ((5, 20), (0.5, 1.0)),
    "elevated": ((30, 180), (0.02, 0.1)),
    "slow burn": ((720, 1800), (0.0025, 0.005)),
    "spike": ((1, 2), (0.1, 0.4)),
}


def generate_incidents(seed: int, *, days: int = 30, outages: int = 2, elevated: int = 3, slow_burns: int = 2,
                       spikes: int = 12) -> list[Incident]:
    """Non-overlapping incidents, one per time slot, in a seeded order, with seeded sizes."""
    rng = stream(seed, "slo", "incidents")
    kinds = ["outage"] * outages + ["elevated"] * elevated + ["slow burn"] * slow_burns + ["spike"] * spikes
    rng.shuffle(kinds)
    total = days * 1440
    slot = total // max(1, len(kinds) + 1)
    out = []
    for i, kind in enumerate(kinds):
        (m_lo, m_hi), (r_lo, r_hi) = _KINDS[kind]
        minutes = rng.randint(m_lo, m_hi)
        room = slot - minutes - 360
        if room < 0:
            raise ObservabilityError(f"{days} days are too short for {len(kinds)} incidents: a {kind} needs "
                                     f"{minutes + 360} minutes and the slots have {slot}")
        start = (i + 1) * slot + rng.randint(0, room)
        out.append(Incident(start, minutes, round(rng.uniform(r_lo, r_hi), 4), kind))
    return out


def simulate_traffic(seed: int, *, days: int = 30, requests_per_minute: int = 1000,
                     baseline_error_ratio: float = 0.0002, incidents: list[Incident] | None = None,
                     slo: SLO = SLO(), significant_budget: float = 0.02) -> Traffic:
    """Per-minute request and error counts (see module doc); the same seed gives the same traffic."""
    days = check_int("days", days, minimum=4)
    check_int("requests_per_minute", requests_per_minute, minimum=1)
    check_number("baseline_error_ratio", baseline_error_ratio, minimum=0, maximum=1)
    incidents = generate_incidents(seed, days=days) if incidents is None else list(incidents)
    rng = stream(seed, "slo", "errors")
    minutes = days * 1440
    ratio = [baseline_error_ratio] * minutes
    for inc in incidents:
        for m in range(max(0, inc.start), min(minutes, inc.end)):
            ratio[m] = max(ratio[m], inc.error_ratio)
    requests = [requests_per_minute] * minutes
    errors = [_binomial(rng, requests_per_minute, p) for p in ratio]
    traffic = Traffic(requests, errors, incidents, slo)
    traffic.significant = [traffic.budget_spent(i) >= significant_budget for i in incidents]
    return traffic


def evaluate_approach(approach: Approach, traffic: Traffic, severity: str = "page") -> list[bool]:
    """Whether the approach's ``severity`` conditions are firing at each minute (evaluated once a minute)."""
    req = [0, *accumulate(traffic.requests)]
    err = [0, *accumulate(traffic.errors)]
    n = len(traffic.requests)
    budget = traffic.slo.budget_ratio

    def ratio(t, w):
        lo = max(0, t + 1 - w)
        r = req[t + 1] - req[lo]
        return (err[t + 1] - err[lo]) / r if r else 0.0

    firing, run = [], 0
    for t in range(n):
        cond = False
        for long_m, short_m, factor, sev in approach.conditions:
            if sev != severity:
                continue
            threshold = factor * budget
            if ratio(t, long_m) > threshold and (short_m is None or ratio(t, short_m) > threshold):
                cond = True
                break
        run = run + 1 if cond else 0
        firing.append(cond and run - 1 >= approach.for_minutes)
    return firing


def episodes(firing: list[bool]) -> list[tuple[int, int]]:
    """``(first, last + 1)`` minutes of each stretch of firing."""
    out, start = [], None
    for t, f in enumerate(firing):
        if f and start is None:
            start = t
        elif not f and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, len(firing)))
    return out


def compare(seed: int, *, days: int = 30, approaches=APPROACHES, **traffic_args) -> dict:
    """Score every approach on the same simulated traffic; returns ``{"rows": [...], "traffic", "firing"}``.

    Each row (see the module doc): approach, significant incidents, paged, ticketed only,
    missed, false pages, false tickets, median and worst detection time (minutes), median
    reset time (minutes), minutes paging without a significant incident.
    """
    traffic = simulate_traffic(seed, days=days, **traffic_args)
    significant = [i for i, s in zip(traffic.incidents, traffic.significant) if s]
    rows, firing_by = [], {}
    in_incident = [False] * len(traffic.requests)
    for inc in significant:
        for t in range(inc.start, min(len(in_incident), inc.end)):
            in_incident[t] = True
    for approach in approaches:
        firing = evaluate_approach(approach, traffic, "page")
        ticket = evaluate_approach(approach, traffic, "ticket")
        firing_by[approach.name] = firing
        detection, reset, ticketed, missed = [], [], 0, 0
        for inc in significant:
            hit = next((t for t in range(inc.start, min(len(firing), inc.end)) if firing[t]), None)
            if hit is None:
                if any(ticket[inc.start:inc.end]):
                    ticketed += 1
                else:
                    missed += 1
                continue
            detection.append(hit - inc.start)
            stop = next((t for t in range(inc.end, len(firing)) if not firing[t]), len(firing))
            reset.append(stop - inc.end)

        def false(f):
            return sum(1 for s, _ in episodes(f) if not in_incident[s])

        rows.append({
            "approach": approach.name, "significant": len(significant), "paged": len(detection),
            "ticketed_only": ticketed, "missed": missed, "false_pages": false(firing),
            "false_tickets": false(ticket),
            "detection_median_min": quantile(detection, 0.5) if detection else math.nan,
            "detection_max_min": max(detection) if detection else math.nan,
            "reset_median_min": quantile(reset, 0.5) if reset else math.nan,
            "paging_minutes_without_incident": sum(1 for f, i in zip(firing, in_incident) if f and not i),
        })
    return {"rows": rows, "traffic": traffic, "firing": firing_by}
