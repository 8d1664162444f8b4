"""The one answer every checker gives: a verdict with the checks behind it.

Exercise checkers and experiment checkers (did every saga end completed or compensated?
is this history linearizable?) return a ``Verdict``: what was judged, each check with
whether it passed and the numbers that decided it, and a hint when it did not pass.
Printing it gives the text a notebook shows; ``bool(verdict)`` is whether it passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One criterion: its name, whether it held, and what was measured."""

    name: str
    passed: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"[{'PASS' if self.passed else 'FAIL'}] {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Verdict:
    """What a checker concluded about ``subject``.

    ``passed`` holds when there is at least one check and every check passed. ``numbers``
    carries the measured values for tests and tables; ``hint`` is shown only on failure.
    """

    subject: str
    checks: tuple[Check, ...]
    numbers: Mapping[str, Any] = field(default_factory=dict)
    hint: str = ""

    def __post_init__(self):
        object.__setattr__(self, "checks", tuple(self.checks))
        if not all(isinstance(c, Check) for c in self.checks):
            raise TypeError("Verdict.checks must hold Check objects")

    @classmethod
    def of(cls, subject: str, checks: Iterable[tuple[str, bool, str] | Check], *, numbers=None,
           hint: str = "") -> Verdict:
        """Build from ``(name, passed, detail)`` triples or ``Check`` objects."""
        return cls(subject, tuple(c if isinstance(c, Check) else Check(*c) for c in checks), dict(numbers or {}), hint)

    @classmethod
    def rejected(cls, subject: str, reason: str, *, hint: str = "") -> Verdict:
        """A verdict for an answer that could not even be judged (missing, wrong type, raised)."""
        return cls(subject, (Check("answer can be judged", False, reason),), {}, hint)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def reasons(self) -> list[str]:
        """The failed checks as text (empty when the verdict passed)."""
        return [f"{c.name}: {c.detail}" if c.detail else c.name for c in self.failures]

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'}: {self.subject}"]
        lines += [f"  {c}" for c in self.checks]
        if self.hint and not self.passed:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)
