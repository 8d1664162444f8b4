"""A progressive canary, as Flagger runs one: shift traffic in steps, analyse, promote or roll back.

We follow **Flagger** (``flagger.app``, Canary ``spec.analysis``), whose vocabulary is:

* ``stepWeights``: the canary's weights in turn (here 5, 25, 50, 100 %);
* ``interval``: how long each step runs before its analysis (one window per check);
* ``metrics``: the built-in ``request-success-rate`` (``thresholdRange.min``, in %, over the
  window: non-5xx / all) and ``request-duration`` (``thresholdRange.max``, the p99 in
  milliseconds over the window), both measured on the canary's traffic only;
* ``threshold``: the number of failed checks after which the canary is rolled back.
  A failed check keeps the weight where it is (Flagger "halts advancement") and is
  counted; the count is not reset by a later success within one rollout (Flagger resets
  ``status.failedChecks`` only when a new revision starts). A window in which the canary
  received no request is a failed check ("no values found for metric", as in Flagger);
* when the check at the last step passes the canary is **promoted** (it takes all the
  traffic); a rollback puts every request back on the stable version at once.

(Argo Rollouts expresses the same with ``steps: [setWeight, pause]`` and an
``AnalysisTemplate`` whose ``failureLimit`` plays ``threshold``'s part.)

The controller drives a ``Sidecar``: it rewrites the weights of one route through
``TrafficConfig.with_weights`` and ``Sidecar.apply`` (so a step takes effect at the next
request), lets the caller's ``load(duration)`` send traffic through the sidecar for the
window, and reads the sidecar's ``RequestRecord`` s. Run it in virtual time for a
reproducible rollout.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from workbook.core.errors import ParameterError
from workbook.core.params import check_int, check_number
from workbook.core.stats import quantile
from workbook.mesh.sidecar import Sidecar


@dataclass(frozen=True)
class CanaryAnalysis:
    """Flagger's ``analysis``: step weights, window, the two metric thresholds, failed-check limit."""

    step_weights: Sequence[int] = (5, 25, 50, 100)
    interval: float = 60.0
    min_success_rate: float = 99.0  # %, request-success-rate thresholdRange.min
    max_p99_ms: float = 500.0  # request-duration thresholdRange.max
    threshold: int = 2  # failed checks before a rollback

    def __post_init__(self):
        weights = list(self.step_weights)
        if not weights or any(isinstance(w, bool) or not isinstance(w, int) or not 0 < w <= 100 for w in weights) \
                or weights != sorted(set(weights)):
            raise ParameterError("step_weights", self.step_weights, "increasing integers in (0, 100]")
        check_number("interval", self.interval, minimum=0, min_exclusive=True)
        check_number("min_success_rate", self.min_success_rate, minimum=0, maximum=100)
        check_number("max_p99_ms", self.max_p99_ms, minimum=0, min_exclusive=True)
        check_int("threshold", self.threshold, minimum=1)


@dataclass(frozen=True)
class AnalysisResult:
    """One check: the window, the canary's numbers in it, the verdict and what followed."""

    start: float
    end: float
    weight: int
    requests: int
    errors: int
    success_rate: float  # %, NaN when no request
    p99_ms: float  # NaN when no request
    passed: bool
    reasons: tuple[str, ...]
    failed_checks: int
    action: str  # "advance" | "hold" | "rollback" | "promote"


@dataclass
class CanaryRun:
    """The rollout: ``outcome`` ("promoted" / "rolled back"), ``weights`` as (time, canary %) steps."""

    outcome: str = "running"
    weights: list[tuple[float, int]] = field(default_factory=list)
    analyses: list[AnalysisResult] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return [a.__dict__.copy() for a in self.analyses]


def analyse_window(records, start: float, end: float, subset: str, route: str, analysis: CanaryAnalysis,
                   weight: int, failed_before: int) -> tuple[AnalysisResult, bool]:
    """Flagger's two built-in checks over the canary's requests that started in ``[start, end)``."""
    window = [r for r in records if start <= r.start < end and r.subset == subset and r.route == route]
    errors = sum(1 for r in window if r.status >= 500)
    reasons = []
    if not window:
        success, p99 = math.nan, math.nan
        reasons.append(f"no values found: {subset} received no request in the window")
    else:
        success = 100.0 * (len(window) - errors) / len(window)
        p99 = 1000.0 * quantile([r.latency for r in window], 0.99)
        if success < analysis.min_success_rate:
            reasons.append(f"request-success-rate {success:.2f} % < {analysis.min_success_rate:g} %")
        if p99 > analysis.max_p99_ms:
            reasons.append(f"request-duration p99 {p99:.0f} ms > {analysis.max_p99_ms:g} ms")
    passed = not reasons
    failed = failed_before + (0 if passed else 1)
    result = AnalysisResult(start, end, weight, len(window), errors, success, p99, passed, tuple(reasons), failed, "")
    return result, passed


async def run_canary(sidecar: Sidecar, route: str, load: Callable[[float], Awaitable[object]], *,
                     analysis: CanaryAnalysis | None = None, stable: str = "v1", canary: str = "v2") -> CanaryRun:
    """Roll ``canary`` out on route ``route`` of ``sidecar``'s configuration, step by step.

    ``load(duration)`` must send traffic through ``sidecar`` for ``duration`` seconds.
    Returns the weights over time and every analysis; the sidecar is left with 100 % on
    the canary (promoted) or on the stable version (rolled back).
    """
    analysis = analysis or CanaryAnalysis()
    clock = sidecar.clock
    run = CanaryRun()
    steps = list(analysis.step_weights)
    index, failed = 0, 0

    def set_weight(weight: int, note: str):
        sidecar.apply(sidecar.config.with_weights(route, {stable: 100 - weight, canary: weight}), note=note)
        run.weights.append((clock.now(), weight))

    set_weight(steps[0], f"canary {steps[0]} %")
    while True:
        weight = steps[index]
        start = clock.now()
        await load(analysis.interval)
        if clock.now() < start + analysis.interval:  # a window is one interval, however the load ended
            await clock.sleep(start + analysis.interval - clock.now())
        end = clock.now()
        result, passed = analyse_window(sidecar.records, start, end, canary, route, analysis, weight, failed)
        failed = result.failed_checks
        if not passed and failed >= analysis.threshold:
            action = "rollback"
        elif not passed:
            action = "hold"
        elif index == len(steps) - 1:
            action = "promote"
        else:
            action = "advance"
        run.analyses.append(AnalysisResult(**{**result.__dict__, "action": action}))
        if action == "rollback":
            set_weight(0, "rolled back")
            run.outcome = "rolled back"
            return run
        if action == "promote":
            if weight != 100:
                set_weight(100, "promoted")
            run.outcome = "promoted"
            return run
        if action == "advance":
            index += 1
            set_weight(steps[index], f"canary {steps[index]} %")
