"""What a rate limit is (``RateLimitPolicy``), whom it counts (``limit_key``) and what it
answers (``RateLimitDecision``).

A policy is ``limit`` requests per ``period`` seconds, counted by one of six algorithms
(``RATE_LIMIT_ALGORITHMS``). The three window algorithms admit at most ``limit`` per window; the three
bucket algorithms refill at ``limit / period`` requests per second and hold at most
``burst`` (default ``limit``), so ``burst`` is how many may arrive at once.

Every backend returns the same ``RateLimitDecision``: ``allowed``, ``remaining`` (requests still
admissible right now), ``reset_after`` (seconds until the quota is whole again, the
``t`` of the IETF ``RateLimit`` header) and ``retry_after`` (seconds until this request
would have been admitted; 0 when it was), plus ``fail_mode`` when the backend was down
and the configured fail-open / fail-closed answer was given instead of a count.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbook.core.errors import ParameterError
from workbook.core.params import check_choice, check_int, check_number

RATE_LIMIT_ALGORITHMS = ("fixed_window", "sliding_log", "sliding_window", "token_bucket", "leaky_bucket", "gcra")
"""The six algorithms: fixed window, sliding log, sliding window counter, token bucket,
leaky bucket as a meter, and GCRA (the generic cell rate algorithm)."""

WINDOW_ALGORITHMS = ("fixed_window", "sliding_log", "sliding_window")
BUCKET_ALGORITHMS = ("token_bucket", "leaky_bucket", "gcra")
LIMIT_KEY_SCOPES = ("client", "route", "client+route")
LIMITER_FAIL_MODES = ("open", "closed")
EPSILON = 1e-9
"""Slack in comparisons of fractional tokens and times, so that 0.1 + 0.2 tokens count as
0.3 (the Lua scripts use the same value, so both backends decide alike)."""


@dataclass(frozen=True)
class RateLimitPolicy:
    """``limit`` requests per ``period`` seconds, counted by ``algorithm``.

    ``burst`` (bucket algorithms only; default ``limit``) is the bucket's capacity: how
    many requests may arrive at once after a quiet spell. ``name`` labels the policy in
    the ``RateLimit-Policy`` header. Bad values raise ``ParameterError`` naming the field.
    """

    algorithm: str
    limit: int
    period: float = 1.0
    burst: int | None = None
    name: str = "default"

    def __post_init__(self):
        check_choice("algorithm", self.algorithm, RATE_LIMIT_ALGORITHMS)
        check_int("limit", self.limit, minimum=1)
        object.__setattr__(self, "period", check_number("period", self.period, minimum=0, min_exclusive=True))
        if self.burst is not None:
            if self.algorithm in WINDOW_ALGORITHMS:
                raise ParameterError("burst", self.burst, f"None for {self.algorithm!r} (a window admits `limit` "
                                     f"per window; burst applies to {', '.join(BUCKET_ALGORITHMS)})")
            check_int("burst", self.burst, minimum=1)
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError("name", self.name, "a non-empty string")

    @classmethod
    def from_rate(cls, algorithm: str, rate: float, burst: int, name: str = "default") -> RateLimitPolicy:
        """A bucket policy from a rate in requests per second and a burst (capacity)."""
        rate = check_number("rate", rate, minimum=0, min_exclusive=True)
        check_int("burst", burst, minimum=1)
        # limit/period = rate with limit = burst keeps the window algorithms meaningful too
        return cls(algorithm, burst, burst / rate, None if algorithm in WINDOW_ALGORITHMS else burst, name)

    @property
    def rate(self) -> float:
        """Sustained rate, requests per second."""
        return self.limit / self.period

    @property
    def capacity(self) -> int:
        """The most requests admitted at one instant: ``burst`` for buckets, ``limit`` for windows."""
        return self.limit if self.burst is None else self.burst


def limit_key(scope: str, *, client: str | None = None, route: str | None = None) -> str:
    """The counter's key: per ``client``, per ``route``, or per ``client+route``.

    >>> limit_key("client+route", client="alice", route="/api/orders")
    'route=/api/orders|client=alice'
    """
    check_choice("scope", scope, LIMIT_KEY_SCOPES)
    parts = []
    if scope in ("route", "client+route"):
        if not route:
            raise ParameterError("route", route, f"a non-empty route for scope {scope!r}")
        parts.append(f"route={route}")
    if scope in ("client", "client+route"):
        if not client:
            raise ParameterError("client", client, f"a non-empty client id for scope {scope!r}")
        parts.append(f"client={client}")
    return "|".join(parts)


class RateLimitDecision:
    """One rate-limit decision (see the module docstring for the fields' meaning)."""

    __slots__ = ("allowed", "limit", "remaining", "reset_after", "retry_after", "fail_mode")

    def __init__(self, allowed: bool, limit: int, remaining: int, reset_after: float, retry_after: float,
                 fail_mode: str | None = None):
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after
        self.retry_after = retry_after
        self.fail_mode = fail_mode

    def __bool__(self):
        return self.allowed

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other):
        return isinstance(other, RateLimitDecision) and self.as_dict() == other.as_dict()

    __hash__ = None

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "fail_mode" or v)
        return f"RateLimitDecision({fields})"


@dataclass
class LimiterStats:
    """Counters every limiter keeps: decisions, admissions, rejections, and backend errors
    with the fail-open / fail-closed answers they caused (never silent)."""

    decisions: int = 0
    allowed: int = 0
    rejected: int = 0
    backend_errors: int = 0
    failed_open: int = 0
    failed_closed: int = 0
