"""Crash schedules: named points where a process dies, each at most once.

Every step of two-phase commit where a crash changes what happens has a name:

* coordinator: ``coordinator.before_prepare`` (begin logged, nothing sent),
  ``coordinator.after_votes`` (votes in, no decision logged), ``coordinator.after_decision``
  (decision logged, nothing sent), ``coordinator.after_first_send`` (one participant told),
  ``coordinator.before_end`` (everyone acknowledged, end not logged);
* participant ``p``: ``p.before_prepare`` (request received, nothing persisted),
  ``p.after_prepare`` (prepared state and locks persisted, vote not sent),
  ``p.before_commit`` (decision received, not applied), ``p.after_commit`` (applied, not
  acknowledged), ``p.before_abort``.

A ``CrashPlan`` maps points to the downtime before the process restarts; ``hit(point)``
raises ``Crash`` the first time a planned point is reached (counting ``occurrence``: the
n-th time the point is reached, default the first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from workbook.core.errors import ParameterError
from workbook.core.params import check_number
from workbook.transactions.errors import Crash

COORDINATOR_POINTS = ("before_prepare", "after_votes", "after_decision", "after_first_send", "before_end")
PARTICIPANT_POINTS = ("before_prepare", "after_prepare", "before_commit", "after_commit", "before_abort")


def crash_points(participants: Iterable[str]) -> list[str]:
    """Every crash point of a run with these participants."""
    points = [f"coordinator.{p}" for p in COORDINATOR_POINTS]
    for name in participants:
        points += [f"{name}.{p}" for p in PARTICIPANT_POINTS]
    return points


class CrashPlan:
    """``{point: downtime}`` (or ``{point: (downtime, occurrence)}``): where processes die and for how long."""

    def __init__(self, plan: dict[str, float | tuple[float, int]] | None = None):
        self.plan: dict[str, tuple[float, int]] = {}
        for point, spec in (plan or {}).items():
            if not isinstance(point, str) or "." not in point:
                raise ParameterError("crash point", point, "'coordinator.<step>' or '<participant>.<step>'")
            step = point.split(".", 1)[1]
            if step not in COORDINATOR_POINTS + PARTICIPANT_POINTS:
                raise ParameterError("crash point", point,
                                     "a step among " + ", ".join(sorted(set(COORDINATOR_POINTS + PARTICIPANT_POINTS))))
            downtime, occurrence = spec if isinstance(spec, tuple) else (spec, 1)
            self.plan[point] = (check_number(f"downtime of {point}", downtime, minimum=0), occurrence)
        self.reached: Counter = Counter()
        self.fired: list[tuple[str, float]] = []

    def hit(self, point: str) -> None:
        self.reached[point] += 1
        planned = self.plan.get(point)
        if planned is not None and self.reached[point] == planned[1]:
            self.fired.append((point, planned[0]))
            raise Crash(point)

    def downtime(self, point: str) -> float:
        return self.plan[point][0]
