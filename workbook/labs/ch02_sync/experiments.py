"""Chapter 2's virtual-time experiments, one module each; this module gathers them for the notebook.

* ``breaker_runs``: (a) a brownout through the article's consecutive-failure breaker and
  through the sliding-window breaker (``breaker_timeline``, ``compare_breakers``,
  ``breaker_study``, ``half_open_flood``);
* ``retry_storm``: (b) retries across three hops, naive against jittered with a budget;
* ``timeouts``: (c) availability and p99 as the per-try timeout varies;
* ``hedging``: (d) tail latency with and without hedged requests;
* ``compositions``: a bulkhead and the order of retry and breaker, with and without;
* ``idempotency``: a retried POST, with and without an ``Idempotency-Key`` (real HTTP);
* ``exercise``: the breaker exercise and its checker.

Every experiment is deterministic for a seed, takes well under a second, and imports no
plotting library (the figures are in ``workbook.labs.ch02_sync.figures``); every checker
returns a ``workbook.core.Verdict``.
"""

from workbook.labs.ch02_sync.breaker_runs import (BROWNOUT, CONSECUTIVE_CONFIG, HEALTHY, WINDOW_CONFIG, BreakerRun,
                                                  ConsecutiveFailureConfig, Phase, Scenario, breaker_study,
                                                  breaker_timeline, compare_breakers, half_open_flood)
from workbook.labs.ch02_sync.compositions import bulkhead_comparison, order_comparison
from workbook.labs.ch02_sync.exercise import EXERCISE_SCENARIO, check_breaker_exercise
from workbook.labs.ch02_sync.hedging import HedgeRun, hedging, hedging_verdict, share_above
from workbook.labs.ch02_sync.retry_storm import StormRun, retry_storm, storm_verdict
from workbook.labs.ch02_sync.timeouts import TimeoutPoint, best_timeout, timeout_sweep, timeout_verdict

__all__ = [
    "BROWNOUT", "BreakerRun", "CONSECUTIVE_CONFIG", "ConsecutiveFailureConfig", "EXERCISE_SCENARIO", "HEALTHY",
    "HedgeRun", "Phase", "Scenario", "StormRun", "TimeoutPoint", "WINDOW_CONFIG", "best_timeout", "breaker_study",
    "breaker_timeline", "bulkhead_comparison", "check_breaker_exercise", "compare_breakers", "half_open_flood",
    "hedging", "hedging_verdict", "order_comparison", "retry_storm", "share_above", "storm_verdict",
    "timeout_sweep", "timeout_verdict",
]
