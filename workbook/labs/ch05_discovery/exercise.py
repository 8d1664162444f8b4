"""The chapter's exercise: keep the tail short while one instance stalls.

The shop's cart calls five instances (``default_instances()``: three fast ones of 10 ms,
two slow ones of 30 ms, two requests at a time each) at 300 requests/s; at t = 3 s
``fast-1`` stalls for half a second (a stop-the-world GC pause). Choose the load
balancing algorithm and what the caller does about a slow instance (a per-try timeout,
retries on another instance, outlier ejection: ``CallPolicy``) so that, on each of three
seeds,

1. the p99 latency of all requests is at most ``P99_TARGET_MS``;
2. the p99 of the requests that arrived during the stall is at most ``STALL_P99_TARGET_MS``
   (half the pause: those requests must not simply wait it out);
3. at most ``MAX_FAILED_PCT`` % of the requests fail (every try timed out);
4. retries add at most ``MAX_EXTRA_TRIES_PCT`` % of tries (more is a retry storm: each
   abandoned try still occupies the instance it was sent to).

``check_balancing_choice(answer)`` takes a dict::

    {"algorithm": "round_robin", "timeout": None, "retries": 0,
     "consecutive_failures": None, "ejection_time": 30.0, "max_ejection_percent": 10.0}

(``timeout`` and ``ejection_time`` in seconds; missing keys take these defaults) and
returns a ``Verdict`` judged by running the virtual-time experiment, never by reading
the answer's names.
"""

from __future__ import annotations

from workbook.balancing.factory import BALANCERS
from workbook.core.errors import WorkbookError
from workbook.core.verdict import Verdict
from workbook.labs.ch05_discovery.balancing_runs import DEFAULT_STALL, CallPolicy, compare_balancers

SUBJECT = "balancer and caller policy with fast-1 stalled for 0.5 s"
P99_TARGET_MS = 150.0
STALL_P99_TARGET_MS = 250.0
MAX_FAILED_PCT = 0.1
MAX_EXTRA_TRIES_PCT = 5.0
SEEDS = (0, 1, 2)
DEFAULTS = {"algorithm": "round_robin", "timeout": None, "retries": 0, "consecutive_failures": None,
            "ejection_time": 30.0, "max_ejection_percent": 10.0}


def parse_answer(answer) -> tuple[str, CallPolicy]:
    """The algorithm and the ``CallPolicy`` an answer names; a clear error for a bad one."""
    if not isinstance(answer, dict):
        raise TypeError(f"answer must be a dict like {DEFAULTS!r}, got {answer!r}")
    unknown = sorted(set(answer) - set(DEFAULTS))
    if unknown:
        raise KeyError(f"unknown key(s) {', '.join(unknown)}; the keys are {', '.join(DEFAULTS)}")
    settings = {**DEFAULTS, **answer}
    algorithm = settings.pop("algorithm")
    if algorithm not in BALANCERS:
        raise ValueError(f"algorithm must be one of {', '.join(BALANCERS)}, got {algorithm!r}")
    return algorithm, CallPolicy(**settings)


def run_choice(algorithm: str, policy: CallPolicy, seeds=SEEDS) -> list[dict]:
    """The experiment's row for the choice on each seed."""
    return [compare_balancers(seed, algorithms=[algorithm], policy=policy, stall=DEFAULT_STALL)[0] for seed in seeds]


def check_balancing_choice(answer, *, seeds=SEEDS) -> Verdict:
    try:
        algorithm, policy = parse_answer(answer)
    except (WorkbookError, TypeError, KeyError, ValueError) as e:
        return Verdict.rejected(SUBJECT, f"{type(e).__name__}: {e}")
    rows = run_choice(algorithm, policy, seeds)
    p99 = [r["p99_ms"] for r in rows]
    stall = [r["stall_p99_ms"] for r in rows]
    failed = [round(100 * r["failed"] / r["requests"], 2) for r in rows]
    extra = [r["extra_tries_pct"] for r in rows]

    def seeds_text(values, unit):
        return ", ".join(f"seed {s}: {v:g}{unit}" for s, v in zip(seeds, values))

    checks = [
        (f"p99 of all requests <= {P99_TARGET_MS:g} ms", max(p99) <= P99_TARGET_MS, seeds_text(p99, " ms")),
        (f"p99 of the requests that arrived during the stall <= {STALL_P99_TARGET_MS:g} ms",
         max(stall) <= STALL_P99_TARGET_MS, seeds_text(stall, " ms")),
        (f"failed requests <= {MAX_FAILED_PCT:g} %", max(failed) <= MAX_FAILED_PCT, seeds_text(failed, " %")),
        (f"extra tries <= {MAX_EXTRA_TRIES_PCT:g} % (no retry storm)", max(extra) <= MAX_EXTRA_TRIES_PCT,
         seeds_text(extra, " %")),
    ]
    hint = ("a load-blind balancer keeps sending the stalled and the slow instances their equal share; one that "
            "counts in-flight requests sends the stalled one little, but what it already sent waits out the pause "
            "unless the caller gives up and tries elsewhere. A timeout must sit above the normal tail, or the "
            "retries swamp the instances; without retries a timeout only turns slow answers into failures")
    return Verdict.of(f"{SUBJECT}: {algorithm}, {policy.describe()}", checks,
                      numbers={"p99_ms": p99, "stall_p99_ms": stall, "failed_pct": failed, "extra_tries_pct": extra,
                               "ejections": [r["ejections"] for r in rows]}, hint=hint)
