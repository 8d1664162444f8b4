"""The six algorithms in process memory, read through an injectable ``Clock``.

``MemoryRateLimiter(policy, clock=...)`` returns the limiter for ``policy.algorithm``.
``hit(key)`` decides synchronously (no I/O), ``await decide(key)`` is the same for callers
that treat every backend alike. A decision runs under a lock, so threads cannot
interleave a read and its write; with a ``ManualClock`` or under ``run_virtual`` the
clock is virtual and a test asserts exact admissions at exact instants.

The arithmetic is the same as the Lua scripts of ``workbook.ratelimit.redis_backend``
(same formulas, same ``EPSILON``), so the two backends give the same decisions on the
same timeline; the tests check that they do.

Per key, the state is:

* fixed window: ``[window index, count]``; admits while ``count + cost <= limit``. If the
  clock goes back (a stepped wall clock, or another gateway's clock on Redis), a window
  already left is never reopened (same in the sliding window counter).
* sliding log: the admission times of the last ``period`` (one entry per unit of cost);
  an entry at ``t`` counts while ``now - period < t``.
* sliding window counter: ``[window index, current count, previous count]``; the estimate
  ``previous * (period - elapsed) / period + current`` must stay ``<= limit``.
* token bucket: ``[tokens, last time]``; refills at ``rate`` up to ``burst``.
* leaky bucket as a meter: ``[level, last time]``; the level drains at ``rate`` and a
  request is admitted when ``level + cost <= burst`` (the mirror image of the token
  bucket: both admit exactly the same sequences).
* GCRA: the theoretical arrival time ``tat``; with emission interval ``T = period/limit``
  a request is admitted when ``now >= tat + T*cost - T*burst`` (same sequences again, one
  number of state).
"""

from __future__ import annotations

import math
import threading
from collections import deque

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.errors import ParameterError
from workbook.core.params import check_int
from workbook.ratelimit.policy import EPSILON, RateLimitDecision, LimiterStats, RateLimitPolicy


class MemoryRateLimiter:
    """Base of the in-memory limiters; calling it builds the one for ``policy.algorithm``."""

    algorithm = ""

    def __new__(cls, policy: RateLimitPolicy, clock: Clock = DEFAULT_CLOCK, **kwargs):
        if cls is MemoryRateLimiter:
            if not isinstance(policy, RateLimitPolicy):
                raise ParameterError("policy", policy, "a RateLimitPolicy")
            cls = _BY_ALGORITHM[policy.algorithm]
        return super().__new__(cls)

    def __init__(self, policy: RateLimitPolicy, clock: Clock = DEFAULT_CLOCK, *, sweep_every: int = 4096):
        if policy.algorithm != self.algorithm:
            raise ParameterError("policy.algorithm", policy.algorithm, f"{self.algorithm!r} for {type(self).__name__}")
        self.policy = policy
        self.clock = clock
        self._now = clock.now
        self._state: dict = {}
        self._lock = threading.Lock()
        self.stats = LimiterStats()
        self._limit = policy.limit
        self._period = policy.period
        self._burst = policy.capacity
        self._rate = policy.rate
        self.sweep_every = check_int("sweep_every", sweep_every, minimum=1)
        self._until_sweep = self.sweep_every

    def _check_cost(self, cost) -> None:
        check_int("cost", cost, minimum=1, maximum=self._burst)

    def hit(self, key: str, cost: int = 1) -> RateLimitDecision:
        """Count ``cost`` units for ``key`` now and return the decision.

        Every ``sweep_every`` decisions, or every as many decisions as there are keys if
        that is more (so a sweep costs O(1) per decision however many clients there are),
        the keys whose state no longer matters (a past window, an empty log, a full bucket,
        a past ``tat``) are dropped: memory follows the clients active within about one
        period, not every client ever seen (Redis does the same with key expiry)."""
        if cost != 1:
            self._check_cost(cost)
        now = self._now()
        stats = self.stats
        with self._lock:
            decision = self._decide(key, now, cost)
            stats.decisions += 1
            if decision.allowed:
                stats.allowed += 1
            else:
                stats.rejected += 1
            self._until_sweep -= 1
            if not self._until_sweep:
                self._sweep(now)
                self._until_sweep = max(self.sweep_every, len(self._state))
        return decision

    def _sweep(self, now: float) -> None:
        stale = self._stale
        for key in [k for k, s in self._state.items() if stale(s, now)]:
            del self._state[key]

    def _stale(self, state, now: float) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def keys(self) -> int:
        """How many keys have state now (swept ones excluded)."""
        return len(self._state)

    async def decide(self, key: str, cost: int = 1) -> RateLimitDecision:
        """``hit`` for callers that await every backend."""
        return self.hit(key, cost)

    def reset(self) -> None:
        """Forget every key's state (the counters in ``stats`` stay)."""
        with self._lock:
            self._state.clear()

    def _decide(self, key, now, cost) -> RateLimitDecision:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.policy!r}, clock={self.clock!r})"


class FixedWindowLimiter(MemoryRateLimiter):
    algorithm = "fixed_window"

    def _stale(self, state, now):
        return state[0] < math.floor(now / self._period)

    def _decide(self, key, now, cost):
        period, limit = self._period, self._limit
        window = math.floor(now / period)
        state = self._state.get(key)
        if state is None or state[0] < window:
            state = self._state[key] = [window, 0]
        elif state[0] > window:  # the clock went back (a stepped clock): a window never reopens
            window = state[0]
        reset = (window + 1) * period - now
        count = state[1] + cost
        if count > limit:
            return RateLimitDecision(False, limit, max(0, limit - state[1]), reset, reset)
        state[1] = count
        return RateLimitDecision(True, limit, limit - count, reset, 0.0)


class SlidingLogLimiter(MemoryRateLimiter):
    algorithm = "sliding_log"

    def _stale(self, log, now):
        return not log or log[-1] <= now - self._period

    def _decide(self, key, now, cost):
        period, limit = self._period, self._limit
        log = self._state.get(key)
        if log is None:
            log = self._state[key] = deque()
        horizon = now - period
        while log and log[0] <= horizon:
            log.popleft()
        n = len(log)
        if n + cost > limit:
            retry = log[n + cost - limit - 1] + period - now
            return RateLimitDecision(False, limit, max(0, limit - n), log[-1] + period - now, retry)
        log.extend([now] * cost)
        return RateLimitDecision(True, limit, limit - n - cost, period, 0.0)


class SlidingWindowLimiter(MemoryRateLimiter):
    algorithm = "sliding_window"

    def _stale(self, state, now):
        return state[0] < math.floor(now / self._period) - 1

    def _decide(self, key, now, cost):
        period, limit = self._period, self._limit
        window = math.floor(now / period)
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [window, 0, 0]
        elif state[0] < window:
            state[2] = state[1] if state[0] == window - 1 else 0
            state[0], state[1] = window, 0
        elif state[0] > window:  # the clock went back: stay in the later window, at its start
            window = state[0]
        _, cur, prev = state
        elapsed = max(0.0, now - window * period)
        estimate = prev * (period - elapsed) / period + cur
        if estimate + cost > limit + EPSILON:
            if cur + cost <= limit:  # the previous window's share decays enough within this window
                retry = period * (1 - (limit - cur - cost) / prev) - elapsed
            else:  # only in the next window, once this window's count decays
                retry = (period - elapsed) + period * (1 - (limit - cost) / cur)
            reset = (period - elapsed) + (period if cur else 0.0)
            remaining = max(0, math.floor(limit - estimate + EPSILON))
            return RateLimitDecision(False, limit, remaining, reset, max(0.0, retry))
        state[1] = cur + cost
        return RateLimitDecision(True, limit, math.floor(limit - estimate - cost + EPSILON), 2 * period - elapsed, 0.0)


class TokenBucketLimiter(MemoryRateLimiter):
    algorithm = "token_bucket"

    def _stale(self, state, now):
        tokens, last = state
        return tokens + (now - last) * self._rate >= self._burst

    def _decide(self, key, now, cost):
        burst, rate = self._burst, self._rate
        state = self._state.get(key)
        if state is None:
            tokens, last = burst, now
        else:
            tokens, last = state
            if now > last:
                tokens = min(burst, tokens + (now - last) * rate)
                last = now
        if tokens + EPSILON < cost:
            return RateLimitDecision(False, self._limit, math.floor(tokens + EPSILON), (burst - tokens) / rate,
                            (cost - tokens) / rate)
        tokens -= cost
        self._state[key] = (tokens, last)
        return RateLimitDecision(True, self._limit, math.floor(tokens + EPSILON), (burst - tokens) / rate, 0.0)


class LeakyBucketLimiter(MemoryRateLimiter):
    algorithm = "leaky_bucket"

    def _stale(self, state, now):
        level, last = state
        return level - (now - last) * self._rate <= 0

    def _decide(self, key, now, cost):
        burst, rate = self._burst, self._rate
        state = self._state.get(key)
        if state is None:
            level, last = 0.0, now
        else:
            level, last = state
            if now > last:
                level = max(0.0, level - (now - last) * rate)
                last = now
        if level + cost > burst + EPSILON:
            return RateLimitDecision(False, self._limit, max(0, math.floor(burst - level + EPSILON)), level / rate,
                            (level + cost - burst) / rate)
        level += cost
        self._state[key] = (level, last)
        return RateLimitDecision(True, self._limit, math.floor(burst - level + EPSILON), level / rate, 0.0)


class GCRALimiter(MemoryRateLimiter):
    algorithm = "gcra"

    def _stale(self, tat, now):
        return tat <= now

    def _decide(self, key, now, cost):
        interval = self._period / self._limit
        tat = self._state.get(key, now)
        if tat < now:
            tat = now
        new_tat = tat + interval * cost
        allow_at = new_tat - interval * self._burst
        if now + EPSILON < allow_at:
            return RateLimitDecision(False, self._limit, 0, tat - now, allow_at - now)
        self._state[key] = new_tat
        remaining = math.floor((now - allow_at) / interval + EPSILON)
        return RateLimitDecision(True, self._limit, remaining, new_tat - now, 0.0)


_BY_ALGORITHM = {cls.algorithm: cls for cls in (FixedWindowLimiter, SlidingLogLimiter, SlidingWindowLimiter,
                                               TokenBucketLimiter, LeakyBucketLimiter, GCRALimiter)}
