"""Backoff between retries: exponential with a cap, and jitter (AWS's "full" and "equal").

For the n-th retry (n = 1, 2, ...) the un-jittered delay is
``d(n) = min(cap, initial * multiplier ** (n - 1))``; then

* ``jitter="none"``: ``d(n)`` (synchronised clients retry in lock-step: a thundering herd);
* ``jitter="full"``: uniform in ``[0, d(n)]`` (spreads retries the most);
* ``jitter="equal"``: ``d(n)/2 + uniform(0, d(n)/2)`` (keeps at least half the wait).

The random draws come from the ``random.Random`` passed in, so a seed fixes every wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from workbook.core.params import check_choice, check_number

JITTERS = ("none", "full", "equal")


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.1
    multiplier: float = 2.0
    cap: float = 10.0
    jitter: str = "full"

    def __post_init__(self):
        check_number("initial", self.initial, minimum=0)
        check_number("multiplier", self.multiplier, minimum=1)
        check_number("cap", self.cap, minimum=0)
        check_choice("jitter", self.jitter, JITTERS)

    def base(self, retry: int) -> float:
        """The capped exponential delay before retry number ``retry`` (1-based), before jitter."""
        if retry < 1:
            raise ValueError(f"retry number must be >= 1, got {retry}")
        try:
            raw = self.initial * self.multiplier ** (retry - 1)
        except OverflowError:
            raw = float("inf")
        return min(self.cap, raw)

    def delay(self, retry: int, rng: random.Random) -> float:
        d = self.base(retry)
        if self.jitter == "full":
            return rng.uniform(0.0, d)
        if self.jitter == "equal":
            return d / 2 + rng.uniform(0.0, d / 2)
        return d
