"""The six algorithms on Redis: each decision is ONE Lua script, run atomically in one
round trip (``EVALSHA``; the script, one per policy with its constants written in, is
loaded by ``load()`` or at the first ``NOSCRIPT`` answer, e.g. after a restart).

Atomicity is what the article's limiters lack: a script runs to completion before Redis
serves any other command, so no read of a counter can be separated from its write by
another gateway's request, however many connections and gateway instances there are.
Every key the script touches is in ``KEYS`` (one key per decision: Redis Cluster routes
it to one shard), and each key expires once its state no longer matters (rounded up to an
eighth of the longest it can matter, plus a second: see ``_ttl_choice``; on Redis ``TIME``
a window's later admissions keep the TTL its first one set, since its end does not move). The state is a tag
byte and little-endian doubles (``struct.pack``), exact and cheap for Redis to read and
write; a value in any other format is refused with an error naming the key.

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

Precision: ``TIME`` is read as integer microseconds, and ``now`` is that over 10^6 (a
double, whose resolution is ~0.24 µs in this century); a GCRA emission interval or a
token's refill time must be far above that (a rate far below millions per second per
key), which any real policy is.

What the script replies is not its decision's fields but the inputs it decided from, as
integers: the time in microseconds, the counts it read, and a double of state only when
the client cannot know it (tokens, level, ``tat``, a log entry's time), as the two 32-bit
halves of its bits. The client runs the in-memory limiter's formulas on them (the same
doubles through the same operations), so ``allowed``, ``remaining``, ``reset_after`` and
``retry_after`` are the script's and ``MemoryRateLimiter``'s to the bit, and Redis formats
no fractional number (a ``%.17g`` in Lua cost ~2 µs of a ~50 µs round trip). In the common
case (no count in this window yet, a full bucket, a past ``tat``; an admission in the
sliding log) the reply is one integer; otherwise one status line of integers.

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
import math
import re
import struct

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workbook.core.clock import DEFAULT_CLOCK, Clock
from workbook.core.errors import ParameterError
from workbook.core.params import check_choice, check_int, check_number
from workbook.ratelimit.policy import EPSILON, LIMITER_FAIL_MODES, RateLimitDecision, LimiterStats, RateLimitPolicy

LOGGER = logging.getLogger("workbook.ratelimit")


# The policy's constants are written into the script (one script per policy), so a
# decision sends only the key, and the time and cost when they are not the defaults.
# Redis's TIME is read as integer microseconds ``us`` (exact in a double), and ``now`` is
# ``us / 1e6``: one correctly rounded division, which the client repeats to the bit.
_PRELUDE = """
local limit, period, burst, EPS = $limit, $period, $burst, $eps
local now, cost, us, sec, usec = -1, 1, 0, '0', '0'
if ARGV[1] then now = tonumber(ARGV[1]); cost = tonumber(ARGV[2]) end
if now < 0 then
  local t = redis.call('TIME')
  sec, usec = t[1], t[2]
  us = sec * 1000000 + usec
  now = us / 1000000
end
"""

# A key's state is one string of little-endian doubles after a tag byte ($tag), read and
# written exactly by struct.unpack / struct.pack: no decimal formatting or parsing (a
# '%.17g' costs ~0.25 us in Redis, a struct.pack of two doubles ~0.06 us), and a state
# of another format (another algorithm, an older version's text) is refused, not misread.
_BAD_STATE = ("return redis.error_reply('ratelimit: state of ' .. KEYS[1] .. "
              "' is not a $algorithm state (written by another version?); delete the key')")

# The reply carries what the decision was made FROM, never a formatted result: the
# client runs the in-memory limiter's formulas on the same inputs (same doubles, same
# operations, so the same decision to the bit, admission included) and Redis formats no
# fractional number (one '%.17g' in the reply cost ~2 us of round trip here; a '%d' is
# nearly free). The inputs are ``us`` (Redis TIME; 0 when the client sent its clock),
# integer counts, and a double of state only when the client cannot know it, as the two
# 32-bit halves of its bits ($bits). When the state read is "fresh" (no count in this
# window, a full bucket, a past tat) the reply is the integer ``us`` alone (an integer
# reply: the cheapest to read); otherwise one status line of integers ($ok).
SCRIPTS = {
    "fixed_window": """
local win = math.floor(now / period)
local n = 0
local v = redis.call('GET', KEYS[1])
local reply = us
if v then
  if #v ~= 17 then $bad_state end
  local tag, w, c = struct.unpack('<Bdd', v)
  if tag ~= $tag then $bad_state end
  if w > win then win = w; n = c; reply = {ok = sec .. ' ' .. usec .. ' ' .. n .. string.format(' %d', win)}  -- never reopen a window left
  elseif w == win then n = c; reply = {ok = sec .. ' ' .. usec .. ' ' .. n} end
end
if n + cost > limit then return reply end
if n > 0 and us > 0 then  -- $keepttl
  redis.call('SET', KEYS[1], struct.pack('<Bdd', $tag, win, n + cost), 'KEEPTTL')
  return reply
end
local d = (win + 1) * period - now
$ttl
redis.call('SET', KEYS[1], struct.pack('<Bdd', $tag, win, n + cost), 'PX', ttl)
return reply
""",
    "sliding_log": """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local n = redis.call('ZCARD', KEYS[1])
if n + cost > limit then
  -- the entries' times are the first double of their members: their bits, not their scores' text
  local k = redis.call('ZRANGE', KEYS[1], n + cost - limit - 1, n + cost - limit - 1)[1]
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1)[1]
  if #k ~= 16 or #newest ~= 16 then $bad_state end
  local k1, k2 = struct.unpack('<I4I4', k)
  local n1, n2 = struct.unpack('<I4I4', newest)
  return {ok = sec .. ' ' .. usec .. ' ' .. n .. ' ' .. k1 .. ' ' .. k2 .. ' ' .. n1 .. ' ' .. n2}
end
-- members must be unique: the time alone collides (the article's defect). At one instant
-- nothing expires between two decisions, so the count after trimming numbers them apart;
-- a member is the time and that number packed (16 bytes), the score the time.
if cost == 1 then
  redis.call('ZADD', KEYS[1], now, struct.pack('<dd', now, n + 1))
else
  local args = {}
  for i = 1, cost do
    args[#args + 1] = now
    args[#args + 1] = struct.pack('<dd', now, n + i)
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
redis.call('PEXPIRE', KEYS[1], '$log_ttl_ms')
return n
""",
    "sliding_window": """
local win = math.floor(now / period)
local cur, prev = 0, 0
local v = redis.call('GET', KEYS[1])
local reply = us
if v then
  if #v ~= 25 then $bad_state end
  local tag, w, c, p = struct.unpack('<Bddd', v)
  if tag ~= $tag then $bad_state end
  if w > win then win = w; cur = c; prev = p; reply = {ok = sec .. ' ' .. usec .. ' ' .. cur .. ' ' .. prev .. string.format(' %d', win)}
  elseif w == win then cur = c; prev = p; reply = {ok = sec .. ' ' .. usec .. ' ' .. cur .. ' ' .. prev}
  elseif w == win - 1 then prev = c; reply = {ok = sec .. ' ' .. usec .. ' ' .. '0 ' .. prev} end
end
local elapsed = math.max(0, now - win * period)
if prev * (period - elapsed) / period + cur + cost > limit + EPS then return reply end
if cur > 0 and us > 0 then  -- $keepttl
  redis.call('SET', KEYS[1], struct.pack('<Bddd', $tag, win, cur + cost, prev), 'KEEPTTL')
  return reply
end
local d = 2 * period - elapsed
$ttl
redis.call('SET', KEYS[1], struct.pack('<Bddd', $tag, win, cur + cost, prev), 'PX', ttl)
return reply
""",
    "token_bucket": """
local rate = $rate
local tokens, last, keep = burst, now, 0
local v = redis.call('GET', KEYS[1])
local reply = us
if v then
  if #v ~= 25 then $bad_state end
  local tag
  tag, tokens, last, keep = struct.unpack('<Bddd', v)
  if tag ~= $tag then $bad_state end
  if now > last then tokens = math.min(burst, tokens + (now - last) * rate); last = now end
  if tokens ~= burst then $bits(tokens) end
end
if tokens + EPS < cost then return reply end
tokens = tokens - cost
local d = (burst - tokens) / rate
if us > 0 and now + d + 1 <= keep then  -- $keepttl
  redis.call('SET', KEYS[1], struct.pack('<Bddd', $tag, tokens, last, keep), 'KEEPTTL')
  return reply
end
$ttl
if us > 0 then keep = now + ttl / 1000 - 0.001 else keep = 0 end  -- Redis may count the TTL from its ms clock
redis.call('SET', KEYS[1], struct.pack('<Bddd', $tag, tokens, last, keep), 'PX', ttl)
return reply
""",
    "leaky_bucket": """
local rate = $rate
local level, last, keep = 0, now, 0
local v = redis.call('GET', KEYS[1])
local reply = us
if v then
  if #v ~= 25 then $bad_state end
  local tag
  tag, level, last, keep = struct.unpack('<Bddd', v)
  if tag ~= $tag then $bad_state end
  if now > last then level = math.max(0, level - (now - last) * rate); last = now end
  if level ~= 0 then $bits(level) end
end
if level + cost > burst + EPS then return reply end
level = level + cost
local d = level / rate
if us > 0 and now + d + 1 <= keep then  -- $keepttl
  redis.call('SET', KEYS[1], struct.pack('<Bddd', $tag, level, last, keep), 'KEEPTTL')
  return reply
end
$ttl
if us > 0 then keep = now + ttl / 1000 - 0.001 else keep = 0 end  -- Redis may count the TTL from its ms clock
redis.call('SET', KEYS[1], struct.pack('<Bddd', $tag, level, last, keep), 'PX', ttl)
return reply
""",
    "gcra": """
local interval = $interval
local tat, keep = now, 0
local v = redis.call('GET', KEYS[1])
local reply = us
if v then
  if #v ~= 17 then $bad_state end
  local tag
  tag, tat, keep = struct.unpack('<Bdd', v)
  if tag ~= $tag then $bad_state end
  if tat < now then tat = now else $bits(tat) end
end
local new_tat = tat + interval * cost
if now + EPS < new_tat - interval * burst then return reply end
local d = new_tat - now
if us > 0 and now + d + 1 <= keep then  -- $keepttl
  redis.call('SET', KEYS[1], struct.pack('<Bdd', $tag, new_tat, keep), 'KEEPTTL')
  return reply
end
$ttl
if us > 0 then keep = now + ttl / 1000 - 0.001 else keep = 0 end  -- Redis may count the TTL from its ms clock
redis.call('SET', KEYS[1], struct.pack('<Bdd', $tag, new_tat, keep), 'PX', ttl)
return reply
""",
}
# reply = "us lo hi": a double's exact bits as two unsigned 32-bit integers (printed by '%d')
_BITS = ("local lo, hi = struct.unpack('<I4I4', struct.pack('<d', \\1)); "
         "reply = {ok = sec .. ' ' .. usec .. ' ' .. lo .. ' ' .. hi}")
# A write keeps the key's TTL (SET KEEPTTL, ~0.3 us less Redis CPU than SET PX) when the
# TTL set earlier still covers what the state must outlive, plus a second. A window's end
# does not move, so the TTL set by its first admission covers every later one; a bucket's
# state records ``keep``, the time until which its TTL is known to last (set with the TTL,
# which is rounded up to the next eighth, so the next several writes keep it). Only on
# Redis TIME, whose clock is the one keys expire by (``keep`` is 0, never trusted, when
# written on a client's clock); on a client's clock every write sets the TTL again.
_KEEPTTL = "the TTL set earlier covers this state (Redis TIME: the clock keys expire by)"
_STATE_TAGS = {algorithm: i for i, algorithm in enumerate(SCRIPTS, 1)}


def script_for(policy: RateLimitPolicy) -> str:
    """The Lua source of ``policy``'s decision (its constants written in)."""
    algorithm, period, burst = policy.algorithm, policy.period, policy.capacity
    rate = policy.limit / period
    values = {"limit": policy.limit, "period": repr(period), "burst": burst, "eps": repr(EPSILON),
              "rate": repr(rate), "interval": repr(period / policy.limit), "log_ttl_ms": math.ceil(period * 1000) + 1000, "tag": _STATE_TAGS[algorithm], "algorithm": algorithm}
    values["bad_state"] = _fill(_BAD_STATE, values)
    values["keepttl"] = _KEEPTTL
    values["ttl"] = _ttl_choice(*_RELEVANCE[algorithm](period, burst / rate))
    source = re.sub(r"\$bits\((\w+)\)", _BITS, SCRIPTS[algorithm])
    return _fill(_PRELUDE + source, values)


def _fill(template: str, values: dict) -> str:
    return re.sub(r"\$(\w+)", lambda m: str(values[m.group(1)]), template)


# How long a key's state can matter after an admission (seconds: lowest, highest): the
# ``d`` of each script, from which its TTL is chosen.
_RELEVANCE = {
    "fixed_window": lambda period, full: (0.0, period),  # until the window ends
    "sliding_log": lambda period, full: (period, period),  # until its newest entry leaves (the TTL is constant)
    "sliding_window": lambda period, full: (period, 2 * period),  # until the next window ends
    "token_bucket": lambda period, full: (0.0, full),  # until the bucket is full again
    "leaky_bucket": lambda period, full: (0.0, full),  # until it has drained
    "gcra": lambda period, full: (0.0, full),  # until tat
}
TTL_STEPS = 8


def _ttl_choice(low: float, high: float, steps: int = TTL_STEPS) -> str:
    """Lua choosing the key's TTL (ms, ``ttl``) for a state that matters ``d`` more seconds:
    ``d`` rounded up to the next of ``steps`` steps between ``low`` and ``high``, plus a
    second, as a string written in the script. A TTL computed from ``d`` would be a number
    to format per decision (measured: ~1 µs on a loaded 2-core host, of a ~50 µs round
    trip); the key outlives its state by at most ``(high - low) / steps`` more. Beyond
    ``high`` (rounding) the TTL is computed."""
    branches = []
    for k in range(1, steps + 1):
        bound = low + (high - low) * k / steps
        branches.append(f"if d <= {bound!r} then ttl = '{math.ceil(bound * 1000) + 1000}'")
    return "local ttl\n" + "\nelse".join(branches) + "\nelse ttl = math.ceil(d * 1000) + 1000 end"


_HALVES = struct.Struct("<II")
_DOUBLE = struct.Struct("<d")


def _double(lo, hi) -> float:
    """The double whose bits are the 32-bit halves ``lo`` and ``hi`` (as the script's ``$bits``)."""
    return _DOUBLE.unpack(_HALVES.pack(int(lo), int(hi)))[0]


MAX_LIMIT = 10**14
"""A policy's ``limit`` must stay below this on Redis: the script's reply carries counts
(up to ``limit``) the way Lua prints a number, ``%.14g``, exact for integers below 10^14."""

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
        if policy.limit >= MAX_LIMIT:  # counts travel in the reply as Lua prints them: exact below 10^14
            raise ParameterError("policy.limit", policy.limit, f"below {MAX_LIMIT:.0e} on Redis")
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
        # the command as bytes: redis-py sends bytes as they are (a str name is encoded and
        # split on spaces, a str argument goes through its encoder's type tests)
        self._key_prefix = self.prefix.encode()
        self.stats = LimiterStats()
        self.script = script_for(policy)
        self._sha = hashlib.sha1(self.script.encode()).hexdigest().encode()  # bytes: packed as they are
        self._execute = client.execute_command
        self._limit = policy.limit
        self._period = policy.period
        self._burst = policy.capacity
        self._rate = policy.rate
        self._interval = policy.period / policy.limit
        self._decode = getattr(self, "_" + policy.algorithm)

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
            args = (self._key_prefix + key.encode(),)
            now = None
        else:
            check_int("cost", cost, minimum=1, maximum=self.policy.capacity)
            now = None if self.clock is None else float(self.clock.now())
            args = (self._key_prefix + key.encode(), b"-1" if now is None else repr(now).encode(), cost)
        stats = self.stats
        stats.decisions += 1
        try:
            try:
                reply = await self._execute(b"EVALSHA", self._sha, b"1", *args)
            except NoScriptError:  # a restarted or flushed server: load, then the same call
                await self.load()
                reply = await self._execute(b"EVALSHA", self._sha, b"1", *args)
        except BACKEND_DOWN as exc:
            return self._backend_down(key, exc)
        if self._outage is not None:
            self._recovered()
        decision = self._decode(reply, now, cost)
        if decision.allowed:
            stats.allowed += 1
        else:
            stats.rejected += 1
        return decision

    # The decision from the script's reply: the inputs the script decided from (see
    # SCRIPTS), run through the in-memory limiter's formulas, operation for operation, so
    # every field (admission included) is the one the script computed and the one
    # ``MemoryRateLimiter`` gives for the same state and time. ``now`` is the time the
    # client sent, or None for Redis TIME (then the reply's first integer, microseconds).

    def _fixed_window(self, reply, now, cost):
        period, limit = self._period, self._limit
        if reply.__class__ is int:
            if now is None:
                now = reply / 1_000_000
            window, n = math.floor(now / period), 0
        else:
            fields = reply.split()
            if now is None:
                now = (int(fields[0]) * 1_000_000 + int(fields[1])) / 1_000_000
            n = int(fields[2])
            window = int(fields[3]) if len(fields) > 3 else math.floor(now / period)
        reset = (window + 1) * period - now
        count = n + cost
        if count > limit:
            return RateLimitDecision(False, limit, max(0, limit - n), reset, reset)
        return RateLimitDecision(True, limit, limit - count, reset, 0.0)

    def _sliding_log(self, reply, now, cost):
        period, limit = self._period, self._limit
        if reply.__class__ is int:  # admitted: the count before
            return RateLimitDecision(True, limit, limit - reply - cost, period, 0.0)
        fields = reply.split()
        if now is None:
            now = (int(fields[0]) * 1_000_000 + int(fields[1])) / 1_000_000
        n = int(fields[2])
        retry = _double(fields[3], fields[4]) + period - now
        return RateLimitDecision(False, limit, max(0, limit - n), _double(fields[5], fields[6]) + period - now, retry)

    def _sliding_window(self, reply, now, cost):
        period, limit = self._period, self._limit
        if reply.__class__ is int:
            if now is None:
                now = reply / 1_000_000
            window, cur, prev = math.floor(now / period), 0, 0
        else:
            fields = reply.split()
            if now is None:
                now = (int(fields[0]) * 1_000_000 + int(fields[1])) / 1_000_000
            cur, prev = int(fields[2]), int(fields[3])
            window = int(fields[4]) if len(fields) > 4 else math.floor(now / period)
        elapsed = max(0.0, now - window * period)
        estimate = prev * (period - elapsed) / period + cur
        if estimate + cost > limit + EPSILON:
            if cur + cost <= limit:
                retry = period * (1 - (limit - cur - cost) / prev) - elapsed
            else:
                retry = (period - elapsed) + period * (1 - (limit - cost) / cur)
            reset = (period - elapsed) + (period if cur else 0.0)
            remaining = max(0, math.floor(limit - estimate + EPSILON))
            return RateLimitDecision(False, limit, remaining, reset, max(0.0, retry))
        return RateLimitDecision(True, limit, math.floor(limit - estimate - cost + EPSILON), 2 * period - elapsed, 0.0)

    def _token_bucket(self, reply, now, cost):
        burst, rate = self._burst, self._rate
        if reply.__class__ is int:  # a full bucket
            tokens = burst
        else:
            fields = reply.split()
            tokens = _double(fields[2], fields[3])
        if tokens + EPSILON < cost:
            return RateLimitDecision(False, self._limit, math.floor(tokens + EPSILON), (burst - tokens) / rate,
                                     (cost - tokens) / rate)
        tokens -= cost
        return RateLimitDecision(True, self._limit, math.floor(tokens + EPSILON), (burst - tokens) / rate, 0.0)

    def _leaky_bucket(self, reply, now, cost):
        burst, rate = self._burst, self._rate
        if reply.__class__ is int:  # an empty bucket
            level = 0.0
        else:
            fields = reply.split()
            level = _double(fields[2], fields[3])
        if level + cost > burst + EPSILON:
            return RateLimitDecision(False, self._limit, max(0, math.floor(burst - level + EPSILON)), level / rate,
                                     (level + cost - burst) / rate)
        level += cost
        return RateLimitDecision(True, self._limit, math.floor(burst - level + EPSILON), level / rate, 0.0)

    def _gcra(self, reply, now, cost):
        interval = self._interval
        if reply.__class__ is int:  # tat in the past: now
            if now is None:
                now = reply / 1_000_000
            tat = now
        else:
            fields = reply.split()
            if now is None:
                now = (int(fields[0]) * 1_000_000 + int(fields[1])) / 1_000_000
            tat = _double(fields[2], fields[3])
        new_tat = tat + interval * cost
        allow_at = new_tat - interval * self._burst
        if now + EPSILON < allow_at:
            return RateLimitDecision(False, self._limit, 0, tat - now, allow_at - now)
        return RateLimitDecision(True, self._limit, math.floor((now - allow_at) / interval + EPSILON),
                                 new_tat - now, 0.0)

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
