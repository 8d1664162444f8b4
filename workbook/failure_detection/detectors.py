"""Failure detectors: a fixed timeout, and the phi-accrual detector of Hayashibara et al. (2004).

Both watch one remote process through its heartbeats (``heartbeat()`` when one arrives)
and read time through a ``Clock``. ``is_available()`` says whether the process is trusted
now; ``suspicion_time()`` is the instant at which it will be suspected if no further
heartbeat arrives, which lets a monitor sleep until exactly then instead of polling.

``PhiAccrualDetector`` follows Akka's ``akka.remote.PhiAccrualFailureDetector`` line by
line: the history is seeded with two intervals (``first_heartbeat_estimate`` +/- a
quarter) so a process that sent a single heartbeat can still be suspected; an interval is
added to the history only when the heartbeat arrives while the process is still trusted
(a heartbeat ending a long pause would skew the statistics); at most
``max_sample_size`` intervals are kept; the standard deviation is at least
``min_std_deviation``; ``acceptable_heartbeat_pause`` is added to the mean. phi is
``-log10(P(interval > elapsed))`` with the normal tail approximated by Akka's logistic
formula ``1 / (1 + exp(-y (1.5976 + 0.070566 y^2)))``. Akka's defaults (cluster): threshold
8, 1,000 samples, 100 ms minimum deviation, 3 s acceptable pause, 1 s heartbeats.

``distribution="exponential"`` is Cassandra's variant (``FailureDetector.ArrivalWindow``):
intervals taken as exponential, so ``phi = elapsed / mean / ln 10``.
"""

from __future__ import annotations

import math
from collections import deque

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.params import check_choice, check_int, check_number


class FixedTimeoutDetector:
    """Suspect the process when no heartbeat came for ``timeout`` seconds."""

    def __init__(self, timeout: float, *, clock: Clock = DEFAULT_CLOCK):
        self.timeout = check_number("timeout", timeout, minimum=0, min_exclusive=True)
        self.clock = clock
        self.last: float | None = None

    @property
    def name(self) -> str:
        return f"timeout {self.timeout:g} s"

    def heartbeat(self) -> None:
        self.last = self.clock.now()

    def suspicion_time(self) -> float | None:
        return None if self.last is None else self.last + self.timeout

    def is_available(self, now: float | None = None) -> bool:
        now = self.clock.now() if now is None else now
        return self.last is None or now - self.last < self.timeout


class PhiAccrualDetector:
    """Akka's phi-accrual failure detector (times in seconds); see the module docstring."""

    def __init__(self, threshold: float = 8.0, *, max_sample_size: int = 1000, min_std_deviation: float = 0.1,
                 acceptable_heartbeat_pause: float = 0.0, first_heartbeat_estimate: float = 1.0,
                 distribution: str = "normal", clock: Clock = DEFAULT_CLOCK):
        self.threshold = check_number("threshold", threshold, minimum=0, min_exclusive=True)
        self.max_sample_size = check_int("max_sample_size", max_sample_size, minimum=1)
        self.min_std_deviation = check_number("min_std_deviation", min_std_deviation, minimum=0, min_exclusive=True)
        self.acceptable_heartbeat_pause = check_number("acceptable_heartbeat_pause", acceptable_heartbeat_pause,
                                                       minimum=0)
        self.first_heartbeat_estimate = check_number("first_heartbeat_estimate", first_heartbeat_estimate, minimum=0,
                                                     min_exclusive=True)
        self.distribution = check_choice("distribution", distribution, ("normal", "exponential"))
        self.clock = clock
        self.last: float | None = None
        self.intervals: deque[float] = deque()
        self._sum = 0.0
        self._squares = 0.0

    @property
    def name(self) -> str:
        return f"phi {self.threshold:g}"

    # history ----------------------------------------------------------------------------
    def _add(self, interval: float) -> None:
        if len(self.intervals) >= self.max_sample_size:
            old = self.intervals.popleft()
            self._sum -= old
            self._squares -= old * old
        self.intervals.append(interval)
        self._sum += interval
        self._squares += interval * interval

    def _seed_history(self) -> None:
        self.intervals.clear()
        self._sum = self._squares = 0.0
        mean = self.first_heartbeat_estimate
        self._add(mean - mean / 4)
        self._add(mean + mean / 4)

    @property
    def mean(self) -> float:
        return self._sum / len(self.intervals)

    @property
    def std_deviation(self) -> float:
        variance = self._squares / len(self.intervals) - self.mean ** 2
        return max(math.sqrt(max(variance, 0.0)), self.min_std_deviation)

    def heartbeat(self) -> None:
        now = self.clock.now()
        if self.last is None:
            self._seed_history()
        elif self.is_available(now):
            self._add(now - self.last)
        self.last = now

    # phi ----------------------------------------------------------------------------
    def phi(self, now: float | None = None) -> float:
        if self.last is None:
            return 0.0  # Akka: a process never heard from is not suspected
        now = self.clock.now() if now is None else now
        return self._phi(now - self.last)

    def _phi(self, elapsed: float) -> float:
        mean = self.mean + self.acceptable_heartbeat_pause
        if self.distribution == "exponential":
            return elapsed / mean / math.log(10.0)
        y = (elapsed - mean) / self.std_deviation
        z = y * (1.5976 + 0.070566 * y * y)
        # Akka's two branches, -log10(e / (1 + e)) and -log10(1 - 1 / (1 + e)) with e = exp(-z),
        # are both log10(1 + exp(z)); computed so that neither exp overflows nor e underflows to 0
        return (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) / math.log(10.0)

    def is_available(self, now: float | None = None) -> bool:
        return self.phi(now) < self.threshold

    def suspicion_time(self) -> float | None:
        """When phi reaches the threshold if nothing arrives (phi grows with the elapsed time)."""
        if self.last is None:
            return None
        mean = self.mean + self.acceptable_heartbeat_pause
        if self.distribution == "exponential":
            return self.last + self.threshold * mean * math.log(10.0)
        # phi = log10(1 + exp(z)), z = y (1.5976 + 0.070566 y^2): invert for z, then the cubic for y
        z = math.log(10.0 ** self.threshold - 1.0) if self.threshold < 300 else self.threshold * math.log(10.0)
        lo, hi = -50.0, 50.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if mid * (1.5976 + 0.070566 * mid * mid) < z:
                lo = mid
            else:
                hi = mid
        return self.last + mean + hi * self.std_deviation
