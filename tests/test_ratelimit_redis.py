"""Redis rate limiters on a real redis-server: the same decisions as in memory on crafted
timelines, exactly 100 of 1,000 concurrent requests, one round trip per decision, Redis's
own clock, and fail open / fail closed with the server stopped (counted and logged)."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from tests.test_ratelimit_memory import EXPECTED, TIMELINE
from workbook.core.clock import ManualClock
from workbook.core.errors import ParameterError
from workbook.core.external import RedisServer, ServiceUnavailable
from workbook.ratelimit import (BUCKET_ALGORITHMS, RATE_LIMIT_ALGORITHMS, MemoryRateLimiter, RateLimitPolicy,
                                RedisRateLimiter)

pytestmark = pytest.mark.redis


def pooled(url, connections=50):
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=connections))


async def run_timeline(limiter, clock, timeline=TIMELINE, key="k"):
    out = []
    for t in timeline:
        clock.advance(t - clock.now())
        out.append(await limiter.decide(key))
    return out


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_exact_admissions_on_a_crafted_timeline_same_as_memory(redis_url, algorithm):
    policy = RateLimitPolicy(algorithm, 4, 1.0)

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            clock = ManualClock(1000.0)  # client time, so the timeline is exact
            return await run_timeline(RedisRateLimiter(client, policy, clock=clock), clock,
                                      [1000.0 + t for t in TIMELINE])
        finally:
            await client.aclose()

    on_redis = asyncio.run(main())
    assert "".join("1" if d.allowed else "0" for d in on_redis) == EXPECTED[algorithm]
    clock = ManualClock(1000.0)
    memory = MemoryRateLimiter(policy, clock)
    in_memory = []
    for t in TIMELINE:
        clock.advance(1000.0 + t - clock.now())
        in_memory.append(memory.hit("k"))
    # every field, not only allowed: remaining, reset_after and retry_after agree to the bit
    assert [d.as_dict() for d in on_redis] == [d.as_dict() for d in in_memory]


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_1000_concurrent_requests_against_100_admit_exactly_100_frozen_clock(redis_url, algorithm):
    """50 connections, 1,000 requests at one instant: atomicity alone decides."""
    async def main():
        client = pooled(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 100, 1.0), clock=ManualClock(5.0))
            decisions = await asyncio.gather(*(limiter.decide("client-1") for _ in range(1000)))
            return decisions, limiter.stats
        finally:
            await client.aclose()

    decisions, stats = asyncio.run(main())
    assert sum(d.allowed for d in decisions) == 100
    assert stats.allowed == 100 and stats.rejected == 900 and stats.backend_errors == 0


@pytest.mark.parametrize("algorithm", ("sliding_log",) + BUCKET_ALGORITHMS)
def test_1000_concurrent_requests_against_100_admit_exactly_100_redis_time(redis_url, algorithm):
    """The same on Redis's clock; a period of an hour, so refill during the run is < 1 request
    (the window algorithms are left to the frozen clock: an hour's edge could fall mid-run)."""
    async def main():
        client = pooled(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 100, 3600.0))
            return await asyncio.gather(*(limiter.decide("client-1") for _ in range(1000)))
        finally:
            await client.aclose()

    assert sum(d.allowed for d in asyncio.run(main())) == 100


class CountingRedis(aioredis.Redis):
    """A client that records the name of every command it sends (one per round trip)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = []

    async def execute_command(self, *args, **options):
        name = args[0]
        self.sent.append((name.decode() if isinstance(name, bytes) else name).upper())
        return await super().execute_command(*args, **options)


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_one_round_trip_per_decision(redis_url, algorithm):
    async def main():
        client = CountingRedis.from_url(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 3, 1.0))
            await limiter.load()
            client.sent.clear()
            for _ in range(5):
                await limiter.decide("k")
            return client.sent
        finally:
            await client.aclose()

    assert asyncio.run(main()) == ["EVALSHA"] * 5


def test_script_reloaded_after_a_flush_without_a_wrong_answer(redis_url):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy("gcra", 2, 60.0))
            first = await limiter.decide("k")
            await client.script_flush()
            second, third = await limiter.decide("k"), await limiter.decide("k")
            return first.allowed, second.allowed, third.allowed
        finally:
            await client.aclose()

    assert asyncio.run(main()) == (True, True, False)


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_redis_time_is_the_default_clock_and_keys_expire(redis_url, algorithm):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 2, 30.0), prefix="t")
            decisions = [await limiter.decide("alice") for _ in range(3)]
            keys = await client.keys("t:*")
            ttl = await client.pttl(keys[0])
            return decisions, keys, ttl
        finally:
            await client.aclose()

    decisions, keys, ttl = asyncio.run(main())
    assert [d.allowed for d in decisions] == [True, True, False]
    assert 0 < decisions[2].retry_after <= 60.0  # the sliding counter may need the next window too
    assert keys == [f"t:{algorithm}:default:alice".encode()]
    assert 0 < ttl <= 61_000  # at most two windows plus a second


def test_limiter_checks_its_arguments():
    client = aioredis.Redis()  # never connected
    policy = RateLimitPolicy("gcra", 1, 1.0)
    with pytest.raises(ParameterError, match="'on_error'"):
        RedisRateLimiter(client, policy, on_error="ignore")
    with pytest.raises(ParameterError, match="'policy'"):
        RedisRateLimiter(client, "gcra")
    with pytest.raises(ParameterError, match="'timeout'"):
        RedisRateLimiter.from_url("redis://127.0.0.1:1/0", policy, timeout=0)


# Redis stopped ----------------------------------------------------------------------

def own_server():
    try:
        return RedisServer().start()
    except ServiceUnavailable as exc:
        from tests.fixtures import missing_service
        missing_service(str(exc))


@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_redis_down_gives_the_configured_answer_counted_and_logged(on_error, caplog):
    server = own_server()

    async def main():
        limiter = RedisRateLimiter.from_url(server.url, RateLimitPolicy("token_bucket", 10, 1.0), on_error=on_error,
                                            retry_after_on_error=2.0)
        try:
            before = await limiter.decide("k")
            server.stop()
            loop = asyncio.get_running_loop()
            start = loop.time()
            after = [await limiter.decide("k") for _ in range(3)]
            elapsed = loop.time() - start
            server.start()  # the same port again: Redis is back
            back = await limiter.decide("k")
            return before, after, back, elapsed, limiter.stats
        finally:
            await limiter.aclose()

    try:
        with caplog.at_level(logging.WARNING, logger="workbook.ratelimit"):
            before, after, back, elapsed, stats = asyncio.run(main())
    finally:
        server.stop()
    assert before.allowed and before.fail_mode is None
    assert all(d.fail_mode == on_error and d.allowed == (on_error == "open") for d in after)
    if on_error == "closed":
        assert all(d.retry_after == 2.0 for d in after)
    assert back.fail_mode is None and back.allowed
    assert stats.backend_errors == 3
    assert (stats.failed_open, stats.failed_closed) == ((3, 0) if on_error == "open" else (0, 3))
    lines = [r.getMessage() for r in caplog.records if r.name == "workbook.ratelimit"]
    # one line when the outage begins (not one per request), one when Redis is back
    assert len(lines) == 2, lines
    assert "Redis unavailable" in lines[0] and f"failing {on_error}" in lines[0]
    assert f"reachable again after 3 decisions failed {on_error}" in lines[1]
    assert elapsed < 5.0  # no retry storm before answering (bounds the test, not a speed target)


def test_a_long_outage_is_logged_every_log_interval_with_the_count(caplog):
    server = own_server()
    clock = ManualClock(0.0)

    async def main():
        limiter = RedisRateLimiter.from_url(server.url, RateLimitPolicy("gcra", 10, 1.0), clock=clock,
                                            log_interval=10.0)
        try:
            server.stop()
            for _ in range(25):  # one decision per second for 25 s
                await limiter.decide("k")
                clock.advance(1.0)
            return limiter.stats
        finally:
            await limiter.aclose()

    try:
        with caplog.at_level(logging.WARNING, logger="workbook.ratelimit"):
            stats = asyncio.run(main())
    finally:
        server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "workbook.ratelimit"]
    assert stats.failed_closed == 25
    assert len(lines) == 3, lines  # at 0 s, 10 s, 20 s
    assert "10 more decisions failed closed (11 since the outage began 10.0 s ago)" in lines[1]
    assert "10 more decisions failed closed (21 since the outage began 20.0 s ago)" in lines[2]


def test_other_redis_errors_are_raised_not_absorbed(redis_url):
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.set("ratelimit:gcra:default:k", "not a number")
            await client.lpush("ratelimit:token_bucket:default:k", "a list")
            limiter = RedisRateLimiter(client, RateLimitPolicy("token_bucket", 1, 1.0), on_error="open")
            with pytest.raises(aioredis.ResponseError):
                await limiter.decide("k")
            return limiter.stats
        finally:
            await client.aclose()

    stats = asyncio.run(main())
    assert stats.backend_errors == 0 and stats.failed_open == 0


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_cost_on_redis_time_and_a_decoding_client(redis_url, algorithm):
    async def main():
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # replies as str, not bytes
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 4, 3600.0))
            return [await limiter.decide("k", cost) for cost in (3, 2, 1)]
        finally:
            await client.aclose()

    three, two, one = asyncio.run(main())
    assert (three.allowed, three.remaining) == (True, 1)
    assert not two.allowed and two.retry_after > 0
    assert (one.allowed, one.remaining) == (True, 0)


def test_why_redis_time_two_gateways_with_skewed_clocks(redis_url):
    """Two gateway instances share one Redis; one host's clock runs 1 s ahead. On the
    clients' clocks the fast one opens the next fixed window early and admits a second
    limit's worth at the same real instant; on Redis's TIME both see one window."""
    async def main(shared_clock: bool):
        client = aioredis.Redis.from_url(redis_url)
        await client.flushdb()
        try:
            policy = RateLimitPolicy("fixed_window", 5, 60.0)
            if shared_clock:
                a = b = RedisRateLimiter(client, policy)
            else:
                now = 600.0 + 10.0  # 10 s into a window (t = 600 is an edge)
                a = RedisRateLimiter(client, policy, clock=ManualClock(now))
                b = RedisRateLimiter(client, policy, clock=ManualClock(now + 60.0))  # one window ahead
            admitted = 0
            for limiter in (a, b):
                admitted += sum([(await limiter.decide("alice")).allowed for _ in range(5)])
            # and back on the slow host, the window the fast one opened is not reopened
            admitted += (await a.decide("alice")).allowed
            return admitted
        finally:
            await client.aclose()

    assert asyncio.run(main(shared_clock=False)) == 10
    assert asyncio.run(main(shared_clock=True)) == 5


@pytest.mark.parametrize("algorithm", [a for a in RATE_LIMIT_ALGORITHMS if a != "sliding_log"])
def test_a_state_in_another_format_is_refused_naming_the_key(redis_url, algorithm):
    """State is a tag byte and packed doubles; text written by an older version (or any
    foreign value) raises an error naming the key, never a decision on a misread number."""
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 5, 60.0), prefix="old")
            key = f"old:{algorithm}:default:"
            await client.set(key + "text", "1764250000.1234567 3")  # the previous version's text state
            await client.set(key + "seventeen", "1764250000.123456")  # as long as a packed state of two
            errors = []
            for name in ("text", "seventeen"):
                with pytest.raises(aioredis.ResponseError) as info:
                    await limiter.decide(name)
                errors.append(str(info.value))
            return errors, limiter.stats
        finally:
            await client.aclose()

    errors, stats = asyncio.run(main())
    for name, error in zip(("text", "seventeen"), errors):
        assert f"old:{algorithm}:default:{name}" in error and f"is not a {algorithm} state" in error
    assert stats.backend_errors == 0


@pytest.mark.parametrize("algorithm", ["fixed_window", "token_bucket", "leaky_bucket", "gcra"])
def test_ttl_covers_the_state_and_exceeds_it_by_at_most_one_step(redis_url, algorithm):
    """8 per 8 s: after k admissions at one instant a bucket's state matters k more
    seconds (the fixed window: until its end, 8 s here); the TTL is that plus a second,
    rounded up to the next eighth of 8 s (a constant string in the script)."""
    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            clock = ManualClock(800.0)  # a window edge: the fixed window's state matters 8 s
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 8, 8.0), clock=clock, prefix="ttl")
            ttls = []
            for _ in range(3):
                await limiter.decide("k")
                ttls.append(await client.pttl(limiter.prefix + "k"))
            return ttls
        finally:
            await client.aclose()

    ttls = asyncio.run(main())
    for k, ttl in enumerate(ttls, 1):
        matters = 8.0 if algorithm == "fixed_window" else float(k)
        assert matters * 1000 + 1000 - 200 <= ttl <= matters * 1000 + 1000 + 1000  # one step is 1 s


def test_a_limit_too_large_for_the_reply_is_refused_naming_the_field():
    client = aioredis.Redis()  # never connected
    with pytest.raises(ParameterError, match="'policy.limit'"):
        RedisRateLimiter(client, RateLimitPolicy("fixed_window", 10**14, 1.0))
    RedisRateLimiter(client, RateLimitPolicy("fixed_window", 10**14 - 1, 1.0))


class SetClock:
    """A clock set to any time, backwards too (ManualClock only advances)."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_a_clock_stepping_back_gives_the_same_fields_as_memory(redis_url, algorithm):
    """A window already left is not reopened when a (client) clock steps back: the reply
    then carries the later window's index, and every field is still memory's."""
    times = [1000.0, 1000.5, 1001.2, 1001.3, 1000.9, 1000.95, 1001.25, 999.5, 1002.1, 1001.9, 1001.95]
    policy = RateLimitPolicy(algorithm, 3, 1.0)

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            clock = SetClock()
            limiter = RedisRateLimiter(client, policy, clock=clock, prefix="back")
            out = []
            for t in times:
                clock.t = t
                out.append(await limiter.decide("k"))
            return out
        finally:
            await client.aclose()

    on_redis = asyncio.run(main())
    clock = SetClock()
    memory = MemoryRateLimiter(policy, clock)
    in_memory = []
    for t in times:
        clock.t = t
        in_memory.append(memory.hit("k"))
    assert [d.as_dict() for d in on_redis] == [d.as_dict() for d in in_memory]
    assert not all(d.allowed for d in on_redis) and any(d.allowed for d in on_redis)


class RecordingRedis(aioredis.Redis):
    """A client that keeps every script reply as it came (to read the instant Redis read)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.replies = []

    async def execute_command(self, *args, **options):
        reply = await super().execute_command(*args, **options)
        if args[0] in (b"EVALSHA", "EVALSHA"):
            self.replies.append(reply)
        return reply


def redis_instant(reply) -> float | None:
    """The time a reply says Redis's TIME read (microseconds / 10^6), None if it says none."""
    if isinstance(reply, int):
        return reply / 1_000_000
    fields = reply.split()
    return (int(fields[0]) * 1_000_000 + int(fields[1])) / 1_000_000


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
@pytest.mark.parametrize("decode", [False, True])
def test_on_redis_time_every_field_is_memorys_at_the_instant_redis_read(redis_url, algorithm, decode):
    """On Redis TIME the client derives the decision from the integers of the reply (the
    time in microseconds, counts, a state double's bits): fed the same instants, the
    in-memory limiter gives the same decisions, field for field, refusals included."""
    policy = RateLimitPolicy(algorithm, 4, 3600.0)
    costs = (1, 1, 2, 1, 1, 3, 1)

    async def main():
        client = RecordingRedis.from_url(redis_url, decode_responses=decode)
        plain = aioredis.Redis.from_url(redis_url)  # the log's members are bytes
        try:
            limiter = RedisRateLimiter(client, policy, prefix=f"instant{decode:d}")
            await limiter.load()
            decisions = [await limiter.decide("k", cost) for cost in costs]
            log = await plain.zrange(limiter.prefix + "k", 0, -1, withscores=True) if algorithm == "sliding_log" else []
            return decisions, client.replies, [score for _, score in log]
        finally:
            await client.aclose()
            await plain.aclose()

    decisions, replies, log_times = asyncio.run(main())
    assert len(replies) == len(decisions)
    clock = SetClock()
    memory = MemoryRateLimiter(policy, clock)
    entries = iter(log_times)
    for decision, reply, cost in zip(decisions, replies, costs):
        if algorithm == "sliding_log" and isinstance(reply, int):  # an admission: its time is in the log
            clock.t = next(entries)
            for _ in range(cost - 1):  # one entry per unit of cost, at the same time
                assert next(entries) == clock.t
        else:
            clock.t = redis_instant(reply)
        assert decision.as_dict() == memory.hit("k", cost).as_dict()
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False, False]


@pytest.mark.parametrize("algorithm", [a for a in RATE_LIMIT_ALGORITHMS if a != "sliding_log"])
def test_on_redis_time_a_kept_ttl_still_covers_the_state(redis_url, algorithm):
    """On Redis TIME a write keeps the key's TTL while it covers what the state must
    outlive (SET KEEPTTL): a window's end, the next window's end, or (buckets) until full,
    drained, tat, which grows by 72 s per admission here and crosses the TTL's first step
    (450 s, an eighth of 3,600) at the 7th. After every admission the TTL still covers it
    plus a second, and exceeds that by at most a step."""
    period = 3600.0

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        try:
            limiter = RedisRateLimiter(client, RateLimitPolicy(algorithm, 50, period), prefix="keep")
            out = []
            for _ in range(12):
                decision = await limiter.decide("k")
                out.append((decision, await client.pttl(limiter.prefix + "k")))
            return out
        finally:
            await client.aclose()

    out = asyncio.run(main())
    assert all(d.allowed for d, _ in out)
    step = period / 8 * 1000  # the TTL's range is one period wide for all five
    for decision, ttl in out:
        # reset_after of an admission is what the state must outlive: the window's end (fixed
        # window), the next window's end (sliding window counter), full/drained/tat (buckets)
        matters = decision.reset_after * 1000
        assert matters + 1000 - 50 <= ttl <= matters + 1000 + step + 50, (decision, ttl)
