"""The six algorithms on Redis: each decision is ONE Lua script, run atomically in one
round trip (``EVALSHA``; the script is loaded once, and again only after a
``SCRIPT FLUSH``/restart, which redis-py's ``Script`` does on ``NOSCRIPT``).

Atomicity is what the article's limiters lack: a script runs to completion before Redis
serves any other command, so no read of a counter can be separated from its write by
another gateway's request, however many connections and gateway instances there are.
Every key the script touches is in ``KEYS`` (one key per decision: Redis Cluster routes
it to one shard), and each key expires once its state no longer matters.

Whose clock? By default (``clock=None``) the script reads **Redis's own clock**,
``redis.call('TIME')``. Every gateway instance then decides against the same clock, so
a window or a bucket does not depend on which instance a request reached, and clock skew
between gateway hosts (which would let a fast host open the next window early, or see
time run backwards in a bucket) cannot matter. The cost is replication: a script that
reads ``TIME`` is not deterministic, so it cannot be replicated *verbatim* (re-run on the
replica, where ``TIME`` differs). Redis >= 5 replicates scripts by their *effects* (the
``HSET``/``PEXPIRE`` they issued, carrying the computed values) by default, and Redis 7
only so; on Redis 3.2-4 the script would have to call ``redis.replicate_commands()`` first
and Redis < 3.2 refuses a write after ``TIME``. This backend assumes Redis >= 5.

Passing a ``Clock`` instead sends the client's reading as an argument: the script is then
deterministic (verbatim replication would be safe), and tests drive it in virtual time
(``ManualClock``) to assert exact admissions, the same ones as the in-memory backend
(same formulas, same ``EPSILON``). In production that trades the shared clock for every
gateway host's own, which is only safe with a single gateway instance.

When Redis cannot be reached (connection refused or reset, timeout), the decision is the
configured ``on_error``: ``"closed"`` refuses the request (``retry_after_on_error``
seconds), ``"open"`` admits it. Either way the decision carries ``fail_mode``, the
limiter's ``stats`` count it (``backend_errors``, ``failed_open``/``failed_closed``) and
a warning is logged on the ``workbook.ratelimit`` logger: never silent. Other Redis
errors (a script bug, a wrong key type) are raised, not absorbed. How fast "down" is
noticed is the client's business: redis-py 8's default client retries a refused
connection 10 times with jittered backoff up to 1 s, which would hold every request for
seconds before the fail-open/closed answer. ``RedisRateLimiter.from_url`` builds a client
for a limiter: no retries, short connect and read timeouts, a bounded connection pool.
"""

from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workbook.core.clock import Clock
from workbook.core.params import check_choice, check_int, check_number
from workbook.ratelimit.policy import EPSILON, LIMITER_FAIL_MODES, RateLimitDecision, LimiterStats, RateLimitPolicy

LOGGER = logging.getLogger("workbook.ratelimit")

_PRELUDE = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local EPS = %r
local function num(x) return string.format('%%.17g', x) end
local function ttl(seconds) return math.ceil(seconds * 1000) + 1000 end
""" % EPSILON

# Each script returns {allowed (0/1), remaining, reset_after, retry_after}; the two times
# travel as strings (a Lua number in a reply would be truncated to an integer).
SCRIPTS = {
    "fixed_window": """
local win = math.floor(now / period)
local h = redis.call('HMGET', KEYS[1], 'w', 'n')
local n = 0
if h[1] and tonumber(h[1]) == win then n = tonumber(h[2]) end
local reset = (win + 1) * period - now
if n + cost > limit then return {0, math.max(0, limit - n), num(reset), num(reset)} end
n = n + cost
redis.call('HSET', KEYS[1], 'w', num(win), 'n', n)
redis.call('PEXPIRE', KEYS[1], ttl(reset))
return {1, limit - n, num(reset), '0'}
""",
    "sliding_log": """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now - period))
local n = redis.call('ZCARD', KEYS[1])
if n + cost > limit then
  local k = redis.call('ZRANGE', KEYS[1], n + cost - limit - 1, n + cost - limit - 1, 'WITHSCORES')
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return {0, math.max(0, limit - n), num(tonumber(newest[2]) + period - now), num(tonumber(k[2]) + period - now)}
end
-- members must be unique: the time alone collides (the article's defect), so number them
local base = redis.call('ZCOUNT', KEYS[1], num(now), num(now))
local args = {}
for i = 1, cost do
  args[#args + 1] = num(now)
  args[#args + 1] = num(now) .. '#' .. (base + i)
end
redis.call('ZADD', KEYS[1], unpack(args))
redis.call('PEXPIRE', KEYS[1], ttl(period))
return {1, limit - n - cost, num(period), '0'}
""",
    "sliding_window": """
local win = math.floor(now / period)
local h = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local cur, prev = 0, 0
if h[1] then
  local w = tonumber(h[1])
  if w == win then cur = tonumber(h[2]); prev = tonumber(h[3])
  elseif w == win - 1 then prev = tonumber(h[2]) end
end
local elapsed = now - win * period
local estimate = prev * (period - elapsed) / period + cur
if estimate + cost > limit + EPS then
  local retry
  if cur + cost <= limit then retry = period * (1 - (limit - cur - cost) / prev) - elapsed
  else retry = (period - elapsed) + period * (1 - (limit - cost) / cur) end
  local reset = period - elapsed
  if cur > 0 then reset = reset + period end
  return {0, math.max(0, math.floor(limit - estimate + EPS)), num(reset), num(math.max(0, retry))}
end
redis.call('HSET', KEYS[1], 'w', num(win), 'c', cur + cost, 'p', prev)
redis.call('PEXPIRE', KEYS[1], ttl(2 * period - elapsed))
return {1, math.floor(limit - estimate - cost + EPS), num(2 * period - elapsed), '0'}
""",
    "token_bucket": """
local rate = limit / period
local h = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens, last = burst, now
if h[1] then
  tokens = tonumber(h[1]); last = tonumber(h[2])
  if now > last then tokens = math.min(burst, tokens + (now - last) * rate); last = now end
end
if tokens + EPS < cost then
  return {0, math.floor(tokens + EPS), num((burst - tokens) / rate), num((cost - tokens) / rate)}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 't', num(tokens), 'l', num(last))
redis.call('PEXPIRE', KEYS[1], ttl((burst - tokens) / rate))
return {1, math.floor(tokens + EPS), num((burst - tokens) / rate), '0'}
""",
    "leaky_bucket": """
local rate = limit / period
local h = redis.call('HMGET', KEYS[1], 'v', 'l')
local level, last = 0, now
if h[1] then
  level = tonumber(h[1]); last = tonumber(h[2])
  if now > last then level = math.max(0, level - (now - last) * rate); last = now end
end
if level + cost > burst + EPS then
  return {0, math.max(0, math.floor(burst - level + EPS)), num(level / rate), num((level + cost - burst) / rate)}
end
level = level + cost
redis.call('HSET', KEYS[1], 'v', num(level), 'l', num(last))
redis.call('PEXPIRE', KEYS[1], ttl(level / rate))
return {1, math.floor(burst - level + EPS), num(level / rate), '0'}
""",
    "gcra": """
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if now + EPS < allow_at then return {0, 0, num(tat - now), num(allow_at - now)} end
redis.call('SET', KEYS[1], num(new_tat), 'PX', ttl(new_tat - now))
return {1, math.floor((now - allow_at) / interval + EPS), num(new_tat - now), '0'}
""",
}

BACKEND_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""The errors that mean "Redis cannot answer" and trigger the fail-open/closed choice."""


class RedisRateLimiter:
    """``policy`` enforced on Redis through ``client`` (a ``redis.asyncio.Redis``).

    ``prefix`` namespaces the keys (``prefix:algorithm:name:key``); ``clock=None`` uses
    Redis's ``TIME`` (see the module docstring); ``on_error`` is ``"closed"`` (default)
    or ``"open"``; ``retry_after_on_error`` is the ``Retry-After`` of a fail-closed refusal.
    """

    def __init__(self, client, policy: RateLimitPolicy, *, prefix: str = "ratelimit", clock: Clock | None = None,
                 on_error: str = "closed", retry_after_on_error: float = 1.0, logger: logging.Logger = LOGGER):
        if not isinstance(policy, RateLimitPolicy):
            from workbook.core.errors import ParameterError
            raise ParameterError("policy", policy, "a RateLimitPolicy")
        self.client = client
        self.policy = policy
        self.clock = clock
        self.on_error = check_choice("on_error", on_error, LIMITER_FAIL_MODES)
        self.retry_after_on_error = check_number("retry_after_on_error", retry_after_on_error, minimum=0)
        self.logger = logger
        self.prefix = f"{prefix}:{policy.algorithm}:{policy.name}:"
        self.stats = LimiterStats()
        self._script = client.register_script(_PRELUDE + SCRIPTS[policy.algorithm])
        self._fixed_args = (policy.limit, repr(policy.period), policy.capacity)

    @classmethod
    def from_url(cls, url: str, policy: RateLimitPolicy, *, timeout: float = 0.25, max_connections: int = 64,
                 **kwargs) -> RedisRateLimiter:
        """A limiter with its own client: no retries (the fail mode answers at once),
        ``timeout`` seconds to connect and to read, at most ``max_connections``
        connections (callers beyond them wait for one). ``kwargs`` go to the limiter."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        timeout = check_number("timeout", timeout, minimum=0, min_exclusive=True)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=check_int("max_connections", max_connections, minimum=1), timeout=timeout,
            socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))
        return cls(aioredis.Redis(connection_pool=pool), policy, **kwargs)

    async def aclose(self) -> None:
        """Close the client (and its pool)."""
        await self.client.aclose()

    async def decide(self, key: str, cost: int = 1) -> RateLimitDecision:
        """One atomic decision for ``key`` (one round trip)."""
        if cost != 1:
            check_int("cost", cost, minimum=1, maximum=self.policy.capacity)
        now = -1 if self.clock is None else repr(float(self.clock.now()))
        limit, period, burst = self._fixed_args
        stats = self.stats
        stats.decisions += 1
        try:
            allowed, remaining, reset, retry = await self._script(keys=[self.prefix + key],
                                                                  args=[now, limit, period, burst, cost])
        except BACKEND_DOWN as exc:
            return self._backend_down(key, exc)
        if allowed:
            stats.allowed += 1
            return RateLimitDecision(True, limit, int(remaining), float(reset), 0.0)
        stats.rejected += 1
        return RateLimitDecision(False, limit, int(remaining), float(reset), float(retry))

    def _backend_down(self, key: str, exc: BaseException) -> RateLimitDecision:
        stats = self.stats
        stats.backend_errors += 1
        if self.on_error == "open":
            stats.failed_open += 1
            stats.allowed += 1
            decision = RateLimitDecision(True, self.policy.limit, 0, 0.0, 0.0, fail_mode="open")
        else:
            stats.failed_closed += 1
            stats.rejected += 1
            decision = RateLimitDecision(False, self.policy.limit, 0, self.retry_after_on_error, self.retry_after_on_error,
                                fail_mode="closed")
        self.logger.warning("rate limiter %s: Redis unavailable (%s: %s); failing %s for key %r (%d backend errors so far)",
                            self.policy.algorithm, type(exc).__name__, exc, self.on_error, key, stats.backend_errors)
        return decision

    async def load(self) -> None:
        """Load the script now (``SCRIPT LOAD``), so the first decision is one round trip too."""
        self._script.sha = await self.client.script_load(self._script.script)

    def __repr__(self):
        clock = "Redis TIME" if self.clock is None else repr(self.clock)
        return f"RedisRateLimiter({self.policy!r}, clock={clock}, on_error={self.on_error!r})"
