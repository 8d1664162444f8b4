"""The six algorithms on Redis: each decision is ONE Lua script, run atomically in one
round trip (``EVALSHA``; the script, one per policy with its constants written in, is
loaded by ``load()`` or at the first ``NOSCRIPT`` answer, e.g. after a restart).

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
``SET ... PX`` they issued, carrying the computed state) by default, and Redis 7 only
so: replicas and the AOF receive the result, never a second reading of the clock. On
Redis 3.2-4 the script would have to call ``redis.replicate_commands()`` first, and Redis
< 3.2 refuses a write after ``TIME``. This backend assumes Redis >= 5 (tested on 7).

Precision: ``TIME`` gives seconds since 1970 as a double, whose resolution there is
~0.24 µs; a GCRA emission interval or a token's refill time must be far above that (a
rate far below millions per second per key), which any real policy is.

Passing a ``Clock`` instead sends the client's reading as an argument: the script is then
deterministic (verbatim replication would be safe), and tests drive it in virtual time
(``ManualClock``) to assert exact admissions, the same ones as the in-memory backend
(same formulas, same ``EPSILON``). In production that trades the shared clock for every
gateway host's own, which is only safe with a single gateway instance.

When Redis cannot be reached (connection refused or reset, timeout), the decision is the
configured ``on_error``: ``"closed"`` refuses the request (``retry_after_on_error``
seconds), ``"open"`` admits it. Either way the decision carries ``fail_mode``, the
limiter's ``stats`` count it (``backend_errors``, ``failed_open``/``failed_closed``) and
the ``workbook.ratelimit`` logger warns when the outage begins, every ``log_interval``
seconds while it lasts (with the count), and when Redis answers again: never silent,
and never a line per request. Other Redis
errors (a script bug, a wrong key type) are raised, not absorbed. How fast "down" is
noticed is the client's business: redis-py 8's default client retries a refused
connection 10 times with jittered backoff up to 1 s, which would hold every request for
seconds before the fail-open/closed answer. ``RedisRateLimiter.from_url`` builds a client
for a limiter: no retries, short connect and read timeouts, a bounded connection pool.
"""

from __future__ import annotations

import hashlib
import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.errors import ParameterError
from workbook.core.params import check_choice, check_int, check_number
from workbook.ratelimit.policy import EPSILON, LIMITER_FAIL_MODES, RateLimitDecision, LimiterStats, RateLimitPolicy

LOGGER = logging.getLogger("workbook.ratelimit")
_ONE = (b"1", "1")

# The policy's constants are written into the script (one script per policy), so a
# decision sends only the key, and the time and cost when they are not the defaults.
# Written for speed: no closures, one string.format per reply (measured: each helper
# function call and concatenation shows in the round trip).
_PRELUDE = """
local limit, period, burst = %(limit)d, %(period)r, %(burst)d
local EPS = %(eps)r
local now = -1
if ARGV[1] then now = tonumber(ARGV[1]) end
if now < 0 then
  local t = redis.call('TIME')
  now = t[1] + t[2] / 1000000
end
local cost = 1
if ARGV[2] then cost = tonumber(ARGV[2]) end
"""

# Each script answers one string, "allowed remaining reset_after retry_after", sent as a
# status reply (see _as_status_replies): it parses faster than an array (a Lua number in an
# array would also be truncated to an integer). Times are written with 17 significant digits, so a double goes through
# unchanged (Lua's own tostring keeps 14). State is one string per key: GET, then
# SET ... PX, the fewest commands; a key expires a second after its state stops mattering.
SCRIPTS = {
    "fixed_window": """
local win = math.floor(now / period)
local n = 0
local v = redis.call('GET', KEYS[1])
if v then
  local w, c = string.match(v, '^(%S+) (%S+)$')
  w = tonumber(w)
  if w >= win then win = w; n = tonumber(c) end  -- a window already left never reopens
end
local reset = (win + 1) * period - now
if n + cost > limit then return string.format('0 %d %.17g %.17g', math.max(0, limit - n), reset, reset) end
n = n + cost
redis.call('SET', KEYS[1], string.format('%.17g %d', win, n), 'PX', math.ceil(reset * 1000) + 1000)
return string.format('1 %d %.17g 0', limit - n, reset)
""",
    "sliding_log": """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now - period))
local n = redis.call('ZCARD', KEYS[1])
if n + cost > limit then
  local k = redis.call('ZRANGE', KEYS[1], n + cost - limit - 1, n + cost - limit - 1, 'WITHSCORES')
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  return string.format('0 %d %.17g %.17g', math.max(0, limit - n), tonumber(newest[2]) + period - now,
                       tonumber(k[2]) + period - now)
end
-- members must be unique: the time alone collides (the article's defect). At one instant
-- nothing expires between two decisions, so the count after trimming numbers them apart.
local score = string.format('%.17g', now)
local args = {}
for i = 1, cost do
  args[#args + 1] = score
  args[#args + 1] = score .. '#' .. (n + i)
end
redis.call('ZADD', KEYS[1], unpack(args))
redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000) + 1000)
return string.format('1 %d %.17g 0', limit - n - cost, period)
""",
    "sliding_window": """
local win = math.floor(now / period)
local cur, prev = 0, 0
local v = redis.call('GET', KEYS[1])
if v then
  local w, c, p = string.match(v, '^(%S+) (%S+) (%S+)$')
  w = tonumber(w)
  if w >= win then win = w; cur = tonumber(c); prev = tonumber(p)
  elseif w == win - 1 then prev = tonumber(c) end
end
local elapsed = math.max(0, now - win * period)
local estimate = prev * (period - elapsed) / period + cur
if estimate + cost > limit + EPS then
  local retry
  if cur + cost <= limit then retry = period * (1 - (limit - cur - cost) / prev) - elapsed
  else retry = (period - elapsed) + period * (1 - (limit - cost) / cur) end
  local reset = period - elapsed
  if cur > 0 then reset = reset + period end
  return string.format('0 %d %.17g %.17g', math.max(0, math.floor(limit - estimate + EPS)), reset, math.max(0, retry))
end
redis.call('SET', KEYS[1], string.format('%.17g %d %d', win, cur + cost, prev), 'PX',
           math.ceil((2 * period - elapsed) * 1000) + 1000)
return string.format('1 %d %.17g 0', math.floor(limit - estimate - cost + EPS), 2 * period - elapsed)
""",
    "token_bucket": """
local rate = limit / period
local tokens, last = burst, now
local v = redis.call('GET', KEYS[1])
if v then
  local a, b = string.match(v, '^(%S+) (%S+)$')
  tokens = tonumber(a); last = tonumber(b)
  if now > last then tokens = math.min(burst, tokens + (now - last) * rate); last = now end
end
if tokens + EPS < cost then
  return string.format('0 %d %.17g %.17g', math.floor(tokens + EPS), (burst - tokens) / rate, (cost - tokens) / rate)
end
tokens = tokens - cost
local reset = (burst - tokens) / rate
redis.call('SET', KEYS[1], string.format('%.17g %.17g', tokens, last), 'PX', math.ceil(reset * 1000) + 1000)
return string.format('1 %d %.17g 0', math.floor(tokens + EPS), reset)
""",
    "leaky_bucket": """
local rate = limit / period
local level, last = 0, now
local v = redis.call('GET', KEYS[1])
if v then
  local a, b = string.match(v, '^(%S+) (%S+)$')
  level = tonumber(a); last = tonumber(b)
  if now > last then level = math.max(0, level - (now - last) * rate); last = now end
end
if level + cost > burst + EPS then
  return string.format('0 %d %.17g %.17g', math.max(0, math.floor(burst - level + EPS)), level / rate,
                       (level + cost - burst) / rate)
end
level = level + cost
redis.call('SET', KEYS[1], string.format('%.17g %.17g', level, last), 'PX', math.ceil(level / rate * 1000) + 1000)
return string.format('1 %d %.17g 0', math.floor(burst - level + EPS), level / rate)
""",
    "gcra": """
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if now + EPS < allow_at then return string.format('0 0 %.17g %.17g', tat - now, allow_at - now) end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return string.format('1 %d %.17g 0', math.floor((now - allow_at) / interval + EPS), new_tat - now)
""",
}


def script_for(policy: RateLimitPolicy) -> str:
    """The Lua source of ``policy``'s decision (its constants written in)."""
    source = _PRELUDE % {"limit": policy.limit, "period": policy.period, "burst": policy.capacity,
                         "eps": EPSILON} + SCRIPTS[policy.algorithm]
    return _as_status_replies(source)


def _as_status_replies(source: str) -> str:
    """``return string.format(...)`` -> ``return {ok = string.format(...)}``: a status reply
    (``+...``) is read in one line, a bulk string in two reads (measured: ~1.3 µs of a
    ~50 µs round trip)."""
    out, marker, i = [], "return string.format(", 0
    while (j := source.find(marker, i)) >= 0:
        k, depth = j + len("return "), 0
        while True:
            depth += {"(": 1, ")": -1}.get(source[k], 0)
            k += 1
            if depth == 0 and source[k - 1] == ")":
                break
        out.append(source[i:j] + "return {ok = " + source[j + len("return "):k] + "}")
        i = k
    return "".join(out) + source[i:]


BACKEND_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
"""The errors that mean "Redis cannot answer" and trigger the fail-open/closed choice."""


class RedisRateLimiter:
    """``policy`` enforced on Redis through ``client`` (a ``redis.asyncio.Redis``).

    ``prefix`` namespaces the keys (``prefix:algorithm:name:key``); ``clock=None`` uses
    Redis's ``TIME`` (see the module docstring); ``on_error`` is ``"closed"`` (default)
    or ``"open"``; ``retry_after_on_error`` is the ``Retry-After`` of a fail-closed refusal.
    """

    def __init__(self, client, policy: RateLimitPolicy, *, prefix: str = "ratelimit", clock: Clock | None = None,
                 on_error: str = "closed", retry_after_on_error: float = 1.0, logger: logging.Logger = LOGGER,
                 log_interval: float = 10.0):
        if not isinstance(policy, RateLimitPolicy):
            raise ParameterError("policy", policy, "a RateLimitPolicy")
        self.client = client
        self.policy = policy
        self.clock = clock
        self.on_error = check_choice("on_error", on_error, LIMITER_FAIL_MODES)
        self.retry_after_on_error = check_number("retry_after_on_error", retry_after_on_error, minimum=0)
        self.logger = logger
        self.log_interval = check_number("log_interval", log_interval, minimum=0)
        self._log_clock = clock or DEFAULT_CLOCK
        self._outage: list | None = None  # [started, failures, failures at the last log line, last log time]
        self.prefix = f"{prefix}:{policy.algorithm}:{policy.name}:"
        self.stats = LimiterStats()
        self.script = script_for(policy)
        self._sha = hashlib.sha1(self.script.encode()).hexdigest().encode()  # bytes: packed as they are
        self._execute = client.execute_command
        self._limit = policy.limit

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
        if cost == 1 and self.clock is None:  # the common case: the key is all the script needs
            command = ("EVALSHA", self._sha, b"1", self.prefix + key)
        else:
            check_int("cost", cost, minimum=1, maximum=self.policy.capacity)
            now = "-1" if self.clock is None else repr(float(self.clock.now()))
            command = ("EVALSHA", self._sha, b"1", self.prefix + key, now, cost)
        stats = self.stats
        stats.decisions += 1
        try:
            try:
                reply = await self._execute(*command)
            except NoScriptError:  # a restarted or flushed server: load, then the same call
                await self.load()
                reply = await self._execute("EVALSHA", self._sha, *command[2:])
        except BACKEND_DOWN as exc:
            return self._backend_down(key, exc)
        if self._outage is not None:
            self._recovered()
        allowed, remaining, reset, retry = reply.split()
        if allowed in _ONE:
            stats.allowed += 1
            return RateLimitDecision(True, self._limit, int(remaining), float(reset), 0.0)
        stats.rejected += 1
        return RateLimitDecision(False, self._limit, int(remaining), float(reset), float(retry))

    def _backend_down(self, key: str, exc: BaseException) -> RateLimitDecision:
        stats = self.stats
        stats.backend_errors += 1
        if self.on_error == "open":
            stats.failed_open += 1
            stats.allowed += 1
            decision = RateLimitDecision(True, self._limit, 0, 0.0, 0.0, fail_mode="open")
        else:
            stats.failed_closed += 1
            stats.rejected += 1
            decision = RateLimitDecision(False, self._limit, 0, self.retry_after_on_error, self.retry_after_on_error,
                                         fail_mode="closed")
        self._log_failure(key, exc)
        return decision

    def _log_failure(self, key: str, exc: BaseException) -> None:
        """A warning when an outage starts, then one every ``log_interval`` seconds with the
        count since the last (every failure is counted in ``stats``; an outage at thousands
        of requests per second does not write thousands of lines per second)."""
        now = self._log_clock.now()
        outage = self._outage
        if outage is None:
            self._outage = [now, 1, 1, now]
            self.logger.warning("rate limiter %s: Redis unavailable (%s: %s); failing %s (key %r)",
                                self.policy.algorithm, type(exc).__name__, exc, self.on_error, key)
            return
        outage[1] += 1
        if now - outage[3] >= self.log_interval:
            self.logger.warning("rate limiter %s: Redis still unavailable (%s: %s); %d more decisions failed %s "
                                "(%d since the outage began %.1f s ago)", self.policy.algorithm, type(exc).__name__,
                                exc, outage[1] - outage[2], self.on_error, outage[1], now - outage[0])
            outage[2], outage[3] = outage[1], now

    def _recovered(self) -> None:
        started, failures = self._outage[0], self._outage[1]
        self._outage = None
        self.logger.warning("rate limiter %s: Redis reachable again after %d decisions failed %s over %.1f s",
                            self.policy.algorithm, failures, self.on_error, self._log_clock.now() - started)

    async def load(self) -> None:
        """Load the script now (``SCRIPT LOAD``), so the first decision is one round trip too."""
        sha = await self.client.script_load(self.script)
        self._sha = sha if isinstance(sha, bytes) else sha.encode()

    def __repr__(self):
        clock = "Redis TIME" if self.clock is None else repr(self.clock)
        return f"RedisRateLimiter({self.policy!r}, clock={clock}, on_error={self.on_error!r})"
