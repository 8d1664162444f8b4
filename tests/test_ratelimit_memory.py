"""In-memory rate limiters: exact admissions on crafted timelines (virtual time), exact
counts under concurrency, keys, headers, and bad input named."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbook.core.clock import LoopClock, ManualClock, WallClock
from workbook.core.errors import ParameterError, WorkbookError
from workbook.core.virtual_time import run_virtual
from workbook.ratelimit import (RATE_LIMIT_ALGORITHMS, MemoryRateLimiter, RateLimitDecision, RateLimitPolicy,
                                limit_key, ratelimit_header, ratelimit_headers, ratelimit_policy_header)

# 4 requests per second. Five at 0, then one at each later instant.
TIMELINE = [0, 0, 0, 0, 0, 0.25, 0.5, 0.9, 1.0, 1.0, 1.1, 1.5, 1.5, 2.25, 2.25, 2.25]
EXPECTED = {
    # windows [0,1) [1,2) [2,3): 4 each, counted afresh at every edge
    "fixed_window": "1111000011110111",
    # an admission at t counts until t+1: the four at 0 free four slots at 1.0; at 2.25
    # only the one at 1.5 is still counted
    "sliding_log": "1111000011110111",
    # at 1.0 the previous window (4) weighs 1.0, at 1.1 0.9 (3.6 + 1 > 4), at 1.5 0.5 (2 + 1,
    # 2 + 2); at 2.25 the previous window (2) weighs 0.75: 1.5 + 1, 1.5 + 2, not 1.5 + 3
    "sliding_window": "1111000000011110",
    # bucket of 4 refilling 4/s, one token per 0.25 s: 0.25, 0.5 (1 each), 0.9 (1.6), 1.0
    # (0.6 + 0.4), none at 1.0 and 1.1 (0.4), two at 1.5 (0.4 + 1.6), three at 2.25
    "token_bucket": "1111011110011111",
    "leaky_bucket": "1111011110011111",
    "gcra": "1111011110011111",
}


def run_timeline(limiter, clock, timeline=TIMELINE, key="k"):
    out = []
    for t in timeline:
        clock.advance(t - clock.now())
        out.append(limiter.hit(key))
    return out


def bits(decisions):
    return "".join("1" if d.allowed else "0" for d in decisions)


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_exact_admissions_on_a_crafted_timeline(algorithm):
    clock = ManualClock()
    decisions = run_timeline(MemoryRateLimiter(RateLimitPolicy(algorithm, 4, 1.0), clock), clock)
    assert bits(decisions) == EXPECTED[algorithm]


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_decision_numbers_at_the_first_refusal(algorithm):
    clock = ManualClock()
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 4, 1.0), clock)
    admitted = [limiter.hit("k") for _ in range(4)]
    assert [d.remaining for d in admitted] == [3, 2, 1, 0]
    refused = limiter.hit("k")
    assert not refused.allowed and refused.remaining == 0 and refused.fail_mode is None
    retry = {"fixed_window": 1.0, "sliding_log": 1.0, "sliding_window": 1.25,
             "token_bucket": 0.25, "leaky_bucket": 0.25, "gcra": 0.25}[algorithm]
    assert refused.retry_after == pytest.approx(retry)
    # waiting exactly retry_after is enough, and a hair less is not
    clock.advance(retry - 1e-6)
    assert not limiter.hit("k").allowed
    clock.advance(1e-6)
    assert limiter.hit("k").allowed


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_keys_are_counted_apart(algorithm):
    clock = ManualClock()
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 2, 1.0), clock)
    assert bits(limiter.hit("a") for _ in range(3)) == "110"
    assert bits(limiter.hit("b") for _ in range(3)) == "110"
    assert limiter.stats.allowed == 4 and limiter.stats.rejected == 2 and limiter.stats.decisions == 6


@pytest.mark.parametrize("algorithm", ["token_bucket", "leaky_bucket", "gcra"])
def test_burst_is_the_bucket_capacity_and_the_rate_is_limit_over_period(algorithm):
    clock = ManualClock()
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 10, 1.0, burst=3), clock)
    assert bits(limiter.hit("k") for _ in range(5)) == "11100"
    clock.advance(0.1)  # one request's worth at 10/s
    assert bits(limiter.hit("k") for _ in range(2)) == "10"
    clock.advance(10)  # long quiet: back to burst, not more
    assert bits(limiter.hit("k") for _ in range(4)) == "1110"


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_cost_counts_several_units(algorithm):
    clock = ManualClock()
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 4, 1.0), clock)
    assert limiter.hit("k", cost=3).allowed
    assert not limiter.hit("k", cost=2).allowed
    assert limiter.hit("k", cost=1).allowed
    with pytest.raises(ParameterError, match="'cost'"):
        limiter.hit("k", cost=5)


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_1000_concurrent_requests_against_100_admit_exactly_100_threads(algorithm):
    # real threads, real clock; a period of an hour so that refill during the run is < 1 request
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 100, 3600.0), WallClock())
    with ThreadPoolExecutor(max_workers=16) as pool:
        decisions = list(pool.map(lambda _: limiter.hit("client-1"), range(1000)))
    assert sum(d.allowed for d in decisions) == 100
    assert limiter.stats.allowed == 100 and limiter.stats.rejected == 900


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_1000_concurrent_requests_against_100_admit_exactly_100_asyncio_virtual_time(algorithm):
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 100, 1.0), LoopClock())

    async def main():
        return await asyncio.gather(*(limiter.decide("client-1") for _ in range(1000)))

    assert sum(d.allowed for d in run_virtual(main())) == 100


def test_virtual_time_drives_the_default_loop_clock():
    limiter = MemoryRateLimiter(RateLimitPolicy("fixed_window", 2, 10.0))

    async def main():
        out = []
        for _ in range(3):
            out.append(limiter.hit("k").allowed)
        await asyncio.sleep(10)  # virtual: instant
        out.append(limiter.hit("k").allowed)
        return out

    assert run_virtual(main()) == [True, True, False, True]


def test_sliding_window_counter_weights_the_previous_window():
    clock = ManualClock()
    limiter = MemoryRateLimiter(RateLimitPolicy("sliding_window", 10, 1.0), clock)
    assert bits(limiter.hit("k") for _ in range(10)) == "1" * 10
    clock.advance(1.5)  # previous window (10) weighs 0.5 -> estimate 5: five more
    assert bits(limiter.hit("k") for _ in range(6)) == "111110"
    clock.advance(1.0)  # previous window (5) weighs 0.5 -> 2.5: seven more (2.5 + 7 <= 10)
    assert bits(limiter.hit("k") for _ in range(8)) == "11111110"


def test_fixed_window_admits_twice_the_limit_across_an_edge_the_sliding_ones_do_not():
    admitted = {}
    for algorithm in RATE_LIMIT_ALGORITHMS:
        clock = ManualClock(0.9)
        limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 10, 1.0), clock)
        n = sum(limiter.hit("k").allowed for _ in range(10))
        clock.advance(0.2)  # 1.1: a new fixed window
        admitted[algorithm] = n + sum(limiter.hit("k").allowed for _ in range(10))
    assert admitted["fixed_window"] == 20
    assert admitted["sliding_log"] == 10
    # the counter assumes the previous window's 10 were spread evenly: at 1.1 they weigh 9
    assert admitted["sliding_window"] == 11
    assert admitted["token_bucket"] == admitted["leaky_bucket"] == admitted["gcra"] == 12  # 10 + 0.2 s * 10/s


def test_reset_forgets_state():
    clock = ManualClock()
    limiter = MemoryRateLimiter(RateLimitPolicy("gcra", 1, 1.0), clock)
    assert limiter.hit("k").allowed and not limiter.hit("k").allowed
    limiter.reset()
    assert limiter.hit("k").allowed


# keys, headers, bad input ------------------------------------------------------------

def test_limit_key_per_client_route_or_both():
    assert limit_key("client", client="alice") == "client=alice"
    assert limit_key("route", route="/api/orders") == "route=/api/orders"
    assert limit_key("client+route", client="alice", route="/api/orders") == "route=/api/orders|client=alice"
    with pytest.raises(ParameterError, match="'client'"):
        limit_key("client+route", route="/api/orders")
    with pytest.raises(ParameterError, match="'scope'"):
        limit_key("user", client="alice")


def test_headers_follow_the_ietf_draft():
    policy = RateLimitPolicy("fixed_window", 100, 60, name="per-client")
    ok = RateLimitDecision(True, 100, 42, 17.2, 0.0)
    assert ratelimit_headers(policy, ok) == {"RateLimit-Policy": '"per-client";q=100;w=60',
                                             "RateLimit": '"per-client";r=42;t=18'}
    refused = RateLimitDecision(False, 100, 0, 17.2, 0.3)
    headers = ratelimit_headers(policy, refused)
    assert headers["Retry-After"] == "1" and headers["RateLimit"] == '"per-client";r=0;t=18'
    burst = RateLimitPolicy("token_bucket", 10, 1.0, burst=20, name="burst")
    # a bucket of 20 refilling at 10/s: 20 per the 2 s it takes to refill
    assert ratelimit_policy_header(policy, burst) == '"per-client";q=100;w=60, "burst";q=20;w=2'
    assert ratelimit_header(burst, ok, partition_key="alice") == '"burst";r=42;t=18;pk=:YWxpY2U=:'


def test_retry_after_is_never_less_than_what_the_limiter_said():
    policy = RateLimitPolicy("gcra", 1, 2.5)
    clock = ManualClock()
    limiter = MemoryRateLimiter(policy, clock)
    limiter.hit("k")
    refused = limiter.hit("k")
    wait = int(ratelimit_headers(policy, refused)["Retry-After"])
    assert wait >= refused.retry_after == 2.5
    clock.advance(wait)
    assert limiter.hit("k").allowed


@pytest.mark.parametrize("kwargs,field", [
    (dict(algorithm="leaky", limit=10), "algorithm"),
    (dict(algorithm="gcra", limit=0), "limit"),
    (dict(algorithm="gcra", limit=1.5), "limit"),
    (dict(algorithm="gcra", limit=10, period=0), "period"),
    (dict(algorithm="gcra", limit=10, period=-1), "period"),
    (dict(algorithm="gcra", limit=10, burst=0), "burst"),
    (dict(algorithm="fixed_window", limit=10, burst=5), "burst"),
    (dict(algorithm="gcra", limit=10, name=""), "name"),
])
def test_bad_policy_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(ParameterError, match=f"'{field}'") as info:
        RateLimitPolicy(**kwargs)
    assert isinstance(info.value, WorkbookError) and info.value.name == field


@pytest.mark.parametrize("rate,burst,field", [(0, 5, "rate"), (-1.0, 5, "rate"), (10, 0, "burst")])
def test_from_rate_refuses_bad_rate_or_burst(rate, burst, field):
    with pytest.raises(ParameterError, match=f"'{field}'"):
        RateLimitPolicy.from_rate("token_bucket", rate, burst)


def test_from_rate():
    policy = RateLimitPolicy.from_rate("token_bucket", 5.0, 20)
    assert policy.rate == 5.0 and policy.capacity == 20
    assert RateLimitPolicy.from_rate("fixed_window", 5.0, 20) == RateLimitPolicy("fixed_window", 20, 4.0)


def test_limiter_wants_a_policy():
    with pytest.raises(ParameterError, match="'policy'"):
        MemoryRateLimiter({"algorithm": "gcra"})


@pytest.mark.parametrize("algorithm", RATE_LIMIT_ALGORITHMS)
def test_idle_keys_are_swept_and_sweeping_changes_no_decision(algorithm):
    import random

    rng = random.Random(12)
    events = sorted((rng.uniform(0, 20), f"client-{rng.randrange(30)}") for _ in range(3000))
    policy = RateLimitPolicy(algorithm, 5, 1.0)
    clocks = ManualClock(), ManualClock()
    eager = MemoryRateLimiter(policy, clocks[0], sweep_every=1)  # sweeps after every decision
    never = MemoryRateLimiter(policy, clocks[1], sweep_every=10**9)
    for t, key in events:
        for clock in clocks:
            clock.advance(t - clock.now())
        assert eager.hit(key) == never.hit(key), (t, key)
    assert never.keys() == 30
    for clock in clocks:
        clock.advance(10)  # every state is old now
    for _ in range(31):  # a sweep comes after as many decisions as there are keys (amortised O(1))
        eager.hit("late")
    assert eager.keys() == 1


def test_a_limiter_class_refuses_another_algorithms_policy():
    from workbook.ratelimit import TokenBucketLimiter
    with pytest.raises(ParameterError, match="'policy.algorithm'"):
        TokenBucketLimiter(RateLimitPolicy("gcra", 1, 1.0))
    with pytest.raises(ParameterError, match="'sweep_every'"):
        MemoryRateLimiter(RateLimitPolicy("gcra", 1, 1.0), sweep_every=0)


class SteppedClock:
    """A wall clock that NTP steps backwards: what a clock passed in may do."""

    def __init__(self, now):
        self.t = now

    def now(self):
        return self.t


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window"])
def test_a_clock_stepping_back_does_not_reopen_a_window(algorithm):
    clock = SteppedClock(10.2)
    limiter = MemoryRateLimiter(RateLimitPolicy(algorithm, 3, 1.0), clock)
    assert bits(limiter.hit("k") for _ in range(3)) == "111"
    clock.t = 9.9  # stepped back into the previous window
    assert bits(limiter.hit("k") for _ in range(3)) == "000"


def test_headers_of_a_fail_closed_refusal_carry_its_retry_after():
    policy = RateLimitPolicy("gcra", 10, 1.0)
    refused = RateLimitDecision(False, 10, 0, 3.0, 3.0, fail_mode="closed")
    headers = ratelimit_headers(policy, refused)
    assert headers["Retry-After"] == "3" and headers["RateLimit"] == '"default";r=0;t=3'


def test_a_policy_name_outside_printable_ascii_is_refused_by_name():
    with pytest.raises(ParameterError, match="'name'"):
        ratelimit_policy_header(RateLimitPolicy("gcra", 10, 1.0, name="péage"))
