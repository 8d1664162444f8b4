"""The chapter's exercise: breaker settings for a service with a normal amount of noise.

The service of the exercise is never perfectly healthy: even on a good day
``HEALTHY_ERROR_RATE`` of its calls fail and ``HEALTHY_PAUSE_RATE`` take over a second (GC
pauses), and its latency varies. From ``FAULT[0]`` to ``FAULT[1]`` it browns out (more
errors, most calls slow), then it recovers. A good breaker stays CLOSED through the
noise, opens soon after the brownout starts, keeps most calls away from the failing
service, and closes again soon after the service recovers.

``check_breaker_exercise(answer)`` runs the answer (a ``CircuitBreakerConfig``, a dict of
its settings, or a ``ConsecutiveFailureConfig``) on several seeds and returns a
``Verdict`` with one check per criterion and the numbers behind it. No single setting
passes by being extreme: a hair trigger opens on the noise, a large window or a high
threshold detects too late or never, a long wait in OPEN does not close in time, a very
short one lets the trial calls pile onto the failing service.
"""

from __future__ import annotations

from workbook.core.params import check_int
from workbook.core.seeds import derive_seed
from workbook.core.verdict import Verdict
from workbook.labs.ch02_sync.breaker_runs import (ConsecutiveFailureConfig, Phase, Scenario, breaker_timeline,
                                                  kind_of)
from workbook.resilience import CircuitBreakerConfig

HEALTHY_ERROR_RATE = 0.05
HEALTHY_PAUSE_RATE = 0.03
FAULT = (60.0, 90.0)
_NOISE = dict(median=0.08, sigma=0.6, slow_latency=1.5)

EXERCISE_SCENARIO = Scenario((
    Phase(0.0, failure_rate=HEALTHY_ERROR_RATE, slow_rate=HEALTHY_PAUSE_RATE, fault=False, **_NOISE),
    Phase(FAULT[0], failure_rate=0.2, slow_rate=0.7, slow_latency=2.0, median=0.08, sigma=0.6),
    Phase(FAULT[1], failure_rate=HEALTHY_ERROR_RATE, slow_rate=HEALTHY_PAUSE_RATE, fault=False, **_NOISE),
), duration=130.0, rate=10.0)
"""60 s of normal noise (5 % errors, 3 % pauses of 1.5 s, lognormal latency around 80 ms),
30 s of brownout (20 % errors, 70 % of the rest take 2 s), 40 s of normal noise again."""

MAX_DETECT = 6.0
"""Seconds from the start of the brownout within which the breaker must open (every seed)."""
MAX_REACHED_SHARE = 0.15
"""At most this share of the brownout's calls may reach the failing service (mean over seeds)."""
MAX_CLOSE = 15.0
"""Seconds after the recovery within which the breaker must be CLOSED again (every seed)."""
SEEDS = 3


def _as_config(answer):
    if isinstance(answer, (CircuitBreakerConfig, ConsecutiveFailureConfig)):
        return answer
    if isinstance(answer, dict):
        return CircuitBreakerConfig(**answer)
    raise TypeError(f"expected a CircuitBreakerConfig or a dict of its settings, got {type(answer).__name__}")


def check_breaker_exercise(answer, *, seed: int = 0) -> Verdict:
    """Judge ``answer`` on ``SEEDS`` runs of ``EXERCISE_SCENARIO`` (seeds derived from ``seed``)."""
    subject = "breaker settings for a noisy service that browns out"
    try:
        config = _as_config(answer)
    except (TypeError, ValueError) as exc:
        return Verdict.rejected(subject, f"the settings are not valid: {type(exc).__name__}: {exc}",
                                hint="pass CircuitBreakerConfig(...) or a dict of its settings")
    check_int("seed", seed, minimum=0)
    runs = [breaker_timeline(kind_of(config), config=config, scenario=EXERCISE_SCENARIO,
                             seed=derive_seed(seed, "exercise", i)) for i in range(SEEDS)]
    start, end = FAULT
    false_opens = [len(r.openings(0.0, start)) + len(r.openings(end + MAX_CLOSE)) for r in runs]
    detections = [r.detection for r in runs]
    reached = [r.reached_in_fault for r in runs]
    fault_calls = round((end - start) * EXERCISE_SCENARIO.rate)
    mean_reached = sum(reached) / len(runs)
    closes = [r.closed_after(end) for r in runs]
    # closed again: the last transition before end + MAX_CLOSE leaves it CLOSED, for every seed
    closed_in_time = [r.state_at(end + MAX_CLOSE) == "CLOSED" for r in runs]

    def fmt(xs, unit=" s"):
        return ", ".join("never" if x is None else f"{x:.1f}{unit}" for x in xs)

    checks = [
        ("stays CLOSED through the normal noise", sum(false_opens) == 0,
         f"opened {sum(false_opens)} times while the service was healthy ({HEALTHY_ERROR_RATE:.0%} errors, "
         f"{HEALTHY_PAUSE_RATE:.0%} pauses; per seed: {false_opens})"),
        (f"opens within {MAX_DETECT:g} s of the brownout", all(d is not None and d <= MAX_DETECT for d in detections),
         f"opened after {fmt(detections)}"),
        (f"keeps at least {1 - MAX_REACHED_SHARE:.0%} of the brownout's calls away",
         mean_reached <= MAX_REACHED_SHARE * fault_calls,
         f"{mean_reached:.0f} of {fault_calls} calls reached the failing service (mean; per seed {reached})"),
        (f"CLOSED again within {MAX_CLOSE:g} s of the recovery", all(closed_in_time),
         "closed after " + ", ".join("(already closed)" if c is None else f"{c - end:.1f} s" for c in closes)
         + f"; state {MAX_CLOSE:g} s after: " + ", ".join(r.state_at(end + MAX_CLOSE) for r in runs)),
    ]
    return Verdict.of(subject, checks, numbers={
        "false_opens": false_opens, "detection": detections, "reached": reached, "fault_calls": fault_calls,
        "closed_after": [None if c is None else c - end for c in closes]},
        hint="the healthy service already fails some calls and pauses now and then: size the window and the "
             "thresholds so that this noise cannot reach them, yet a brownout does within seconds")
