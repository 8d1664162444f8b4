"""Bulkhead (concurrency), timeouts and deadline propagation, hedging, fallback, pipeline order."""

import asyncio

import pytest

from workbook.core.clock import ManualClock
from workbook.core.virtual_time import run_virtual
from workbook.resilience import (DEADLINE_HEADER, Backoff, Bulkhead, BulkheadFullError, CallNotPermittedError, CircuitBreaker,
                           DeadlineExceededError, EventRecorder, Fallback, Hedge, OverallTimeout, PerTryTimeoutError,
                           Pipeline, Retry, State, Timeout, current_deadline)
from workbook.resilience.deadline import Deadline, deadline_from_headers, deadline_headers, deadline_scope


def test_bulkhead_never_exceeds_its_limit_and_rejects_without_wait():
    async def main():
        bulkhead = Bulkhead(max_concurrent_calls=4, max_wait_duration=0)

        async def work():
            await asyncio.sleep(1)
            return "ok"

        async def one():
            try:
                return await bulkhead.call_async(work)
            except BulkheadFullError:
                return "full"

        results = await asyncio.gather(*(one() for _ in range(10)))
        return results, bulkhead

    results, bulkhead = run_virtual(main())
    assert results.count("ok") == 4 and results.count("full") == 6
    assert bulkhead.max_in_use == 4 and bulkhead.in_use == 0 and bulkhead.rejected == 6


def test_bulkhead_waiters_get_freed_slots_within_max_wait():
    async def main():
        bulkhead = Bulkhead(max_concurrent_calls=2, max_wait_duration=1.5)
        loop = asyncio.get_running_loop()
        finished = {}

        async def work(i):
            await asyncio.sleep(1)
            finished[i] = loop.time()

        async def one(i):
            try:
                await bulkhead.call_async(work, i)
            except BulkheadFullError:
                finished[i] = "full"

        await asyncio.gather(*(one(i) for i in range(6)))
        return finished, bulkhead.max_in_use

    finished, peak = run_virtual(main())
    # 0,1 run at once; 2,3 wait 1 s and run; 4,5 would wait 2 s > 1.5 s
    assert finished == {0: 1.0, 1: 1.0, 2: 2.0, 3: 2.0, 4: "full", 5: "full"} and peak == 2


def test_per_try_timeout_and_overall_deadline():
    async def main():
        out = []
        try:
            await Timeout(0.5).call_async(asyncio.sleep, 2)
        except PerTryTimeoutError as e:
            out.append(("per-try", asyncio.get_running_loop().time(), str(e)))

        async def inner():
            return await Timeout(10).call_async(asyncio.sleep, 5)

        start = asyncio.get_running_loop().time()
        try:
            await OverallTimeout(1.0).call_async(inner)
        except DeadlineExceededError as e:
            out.append(("deadline", asyncio.get_running_loop().time() - start, type(e).__name__))
        return out

    out = run_virtual(main())
    assert out[0][:2] == ("per-try", 0.5) and "per-try timeout" in out[0][2]
    assert out[1] == ("deadline", 1.0, "DeadlineExceededError")


def test_a_timeout_raised_by_the_callee_is_not_taken_for_our_own():
    """A socket timeout after 0.1 s (retryable) must not become a PerTryTimeoutError, let
    alone a DeadlineExceededError (never retried) while 1.9 s of the deadline remain."""
    class SocketTimeout(TimeoutError):
        pass

    async def callee():
        await asyncio.sleep(0.1)
        raise SocketTimeout("read timed out")

    async def main():
        per_try, out = Timeout(5.0), []
        for call in (lambda: per_try.call_async(callee), lambda: OverallTimeout(5.0).call_async(callee)):
            try:
                await call()
            except TimeoutError as e:
                out.append(type(e).__name__)
        with deadline_scope(Deadline.after(2.0)):  # the per-try limit is cut by the deadline
            try:
                await per_try.call_async(callee)
            except TimeoutError as e:
                out.append(type(e).__name__)
        return out, per_try.fired

    out, fired = run_virtual(main())
    assert out == ["SocketTimeout"] * 3 and fired == 0


def test_remaining_deadline_goes_into_the_header_and_nested_scope_keeps_earlier():
    async def main():
        seen = []

        async def downstream():
            await asyncio.sleep(0.3)
            seen.append(deadline_headers())
            with deadline_scope(Deadline.after(60)):  # cannot extend the caller's deadline
                seen.append(deadline_headers())

        await OverallTimeout(2.0).call_async(downstream)
        seen.append(deadline_headers())  # outside: no deadline
        return seen

    assert run_virtual(main()) == [{DEADLINE_HEADER: "1700"}, {DEADLINE_HEADER: "1700"}, {}]


def test_deadline_from_headers_rejects_garbage():
    async def main():
        return (deadline_from_headers({DEADLINE_HEADER: "250"}).remaining(),
                deadline_from_headers({DEADLINE_HEADER: "soon"}), deadline_from_headers({}),
                deadline_from_headers({DEADLINE_HEADER: "-5"}), deadline_from_headers({DEADLINE_HEADER: "inf"}),
                deadline_from_headers({DEADLINE_HEADER: "nan"}))

    assert run_virtual(main()) == (0.25, None, None, None, None, None)


def test_hedge_cuts_a_slow_first_try_and_counts_extra_load():
    async def main():
        delays = iter([5.0, 0.1, 0.1])
        hedge = Hedge(delay=0.2, max_hedges=1)
        loop = asyncio.get_running_loop()

        async def call():
            d = next(delays)
            await asyncio.sleep(d)
            return d

        start = loop.time()
        result = await hedge.call_async(call)
        return result, loop.time() - start, hedge.sent, hedge.won_by_hedge

    result, elapsed, sent, won = run_virtual(main())
    assert result == 0.1 and elapsed == pytest.approx(0.3) and sent == 2 and won == 1


def test_hedge_not_sent_when_first_try_is_fast():
    async def main():
        hedge = Hedge(delay=0.2)
        for _ in range(5):
            await hedge.call_async(asyncio.sleep, 0.05)
        return hedge.sent

    assert run_virtual(main()) == 5


def test_hedge_raises_last_error_when_all_fail():
    async def main():
        hedge = Hedge(delay=1.0, max_hedges=1)

        async def bad():
            raise ConnectionError("no")

        with pytest.raises(ConnectionError):
            await hedge.call_async(bad)
        return hedge.sent

    assert run_virtual(main()) == 2  # a failure triggers the hedge at once


def test_hedge_does_not_resend_after_a_definitive_answer():
    """A 404 will be a 404 again: no hedge for it. But a hedge rejected by an open breaker
    must not cut the first try, which may still answer."""
    from workbook.resilience import HTTPStatusError

    async def main():
        hedge = Hedge(delay=1.0, max_hedges=2)

        async def not_found():
            await asyncio.sleep(0.01)
            raise HTTPStatusError(404, service="inventory", operation="GET /stock/banana")

        with pytest.raises(HTTPStatusError):
            await hedge.call_async(not_found)
        sent_for_404 = hedge.sent

        tries = iter([("slow", 1.5), ("rejected", 0.0), ("fast", 0.1)])

        async def call():
            kind, delay = next(tries)
            await asyncio.sleep(delay)
            if kind == "rejected":
                raise CallNotPermittedError("svc", "OPEN")
            return kind

        start = asyncio.get_running_loop().time()
        result = await hedge.call_async(call)
        return sent_for_404, result, hedge.sent - sent_for_404, asyncio.get_running_loop().time() - start

    sent_for_404, result, sent, elapsed = run_virtual(main())
    assert sent_for_404 == 1
    # the hedge at t=1 is rejected: no third try, the first one answers at t=1.5
    assert (result, sent, elapsed) == ("slow", 2, pytest.approx(1.5))


def test_fallback_answers_for_an_open_breaker():
    async def main():
        breaker = CircuitBreaker("x")
        breaker.transition_to_forced_open()
        fb = Fallback(lambda exc: f"cached ({type(exc).__name__})")
        return await Pipeline(fallback=fb, breaker=breaker).call_async(asyncio.sleep, 0, "fresh")

    assert run_virtual(main()) == "cached (CallNotPermittedError)"


def test_pipeline_order_is_documented_and_complete():
    assert Pipeline.ORDER == ("fallback", "overall_timeout", "retry", "hedge", "bulkhead", "breaker", "per_try_timeout")
    p = Pipeline(retry=Retry(), breaker=CircuitBreaker(), per_try_timeout=Timeout(1))
    assert p.layers() == ["retry", "breaker", "per_try_timeout"]


def test_pipeline_breaker_records_per_try_timeouts_and_retry_stops_on_open_breaker():
    async def main():
        breaker = CircuitBreaker("svc", sliding_window_size=2, minimum_number_of_calls=2, wait_duration_in_open_state=60)
        rec = EventRecorder()
        breaker.subscribe(rec)
        retry = Retry(5, Backoff(0.1, 1, 1, "none"))
        calls = 0

        async def hangs():
            nonlocal calls
            calls += 1
            await asyncio.sleep(100)

        p = Pipeline(retry=retry, breaker=breaker, per_try_timeout=Timeout(1.0))
        with pytest.raises(CallNotPermittedError):
            await p.call_async(hangs)
        return calls, rec.kinds(), retry.waits, breaker.state

    calls, kinds, waits, state = run_virtual(main())
    # two timed-out tries are recorded as errors -> OPEN; the third try is rejected, and not retried
    assert calls == 2 and kinds.count("error") == 2 and kinds[-1] == "not_permitted"
    assert waits == [0.1, 0.1] and state is State.OPEN


def test_pipeline_bulkhead_rejection_is_not_a_breaker_failure():
    async def main():
        breaker = CircuitBreaker("svc", sliding_window_size=2, minimum_number_of_calls=2)
        p = Pipeline(bulkhead=Bulkhead(1, 0), breaker=breaker)

        async def one():
            try:
                return await p.call_async(asyncio.sleep, 1, "ok")
            except BulkheadFullError:
                return "full"

        results = await asyncio.gather(*(one() for _ in range(5)))
        return results, breaker.metrics().calls, breaker.state

    results, recorded, state = run_virtual(main())
    assert results.count("full") == 4 and recorded == 1 and state is State.CLOSED


def test_pipeline_overall_deadline_bounds_retries_and_reaches_the_call():
    async def main():
        seen = []

        async def slow_fail():
            seen.append(round(current_deadline().remaining(), 6))
            await asyncio.sleep(0.4)
            raise ConnectionError("reset")

        p = Pipeline(fallback=Fallback(lambda e: type(e).__name__), overall_timeout=OverallTimeout(2.0),
                     retry=Retry(10, Backoff(0.5, 1, 1, "none")), per_try_timeout=Timeout(1.0))
        result = await p.call_async(slow_fail)
        return result, seen, asyncio.get_running_loop().time()

    result, seen, end = run_virtual(main())
    # tries start at 0, 0.9 (0.4 s try + 0.5 s wait) and 1.8, with 2.0, 1.1 and 0.2 s of the
    # overall deadline left: each sees min(per-try 1 s, that); the third is cut by the
    # deadline at t=2.0 and the fallback answers
    assert seen == [1.0, 1.0, 0.2] and result == "DeadlineExceededError" and end == pytest.approx(2.0)


def test_per_try_timeout_is_the_deadline_the_callee_and_its_header_see():
    """Envoy sets x-envoy-expected-rq-timeout-ms to the per-try timeout: once a try is
    abandoned, a downstream still working on it works for nobody."""
    async def main():
        seen = []

        async def callee():
            seen.append(deadline_headers())

        await Timeout(0.25).call_async(callee)  # no overall deadline at all
        await OverallTimeout(10.0).call_async(Timeout(0.5).call_async, callee)
        await OverallTimeout(0.3).call_async(Timeout(0.5).call_async, callee)  # the earlier one wins
        return seen

    assert run_virtual(main()) == [{DEADLINE_HEADER: "250"}, {DEADLINE_HEADER: "500"}, {DEADLINE_HEADER: "300"}]


def test_deadline_header_is_whole_milliseconds_without_float_noise():
    clock = ManualClock(0.9)
    assert deadline_headers(Deadline(1.9, clock)) == {DEADLINE_HEADER: "1000"}  # 1.9 - 0.9 = 0.99999...
    assert deadline_headers(Deadline(2.0, ManualClock(1.8))) == {DEADLINE_HEADER: "200"}
    assert deadline_headers(Deadline(1.0, ManualClock(0.0005))) == {DEADLINE_HEADER: "999"}  # rounded down
    assert deadline_headers(Deadline(1.0, ManualClock(3.0))) == {DEADLINE_HEADER: "0"}


def test_pipeline_hedges_each_ask_the_breaker_and_the_loser_is_not_recorded():
    async def main():
        breaker = CircuitBreaker("svc", sliding_window_size=10, minimum_number_of_calls=10)
        rec = EventRecorder()
        breaker.subscribe(rec)
        delays = iter([5.0, 0.05])

        async def call():
            await asyncio.sleep(next(delays))
            return "answer"

        hedge = Hedge(delay=0.1)
        result = await Pipeline(hedge=hedge, bulkhead=Bulkhead(2), breaker=breaker).call_async(call)
        return result, rec.kinds(), hedge.sent, breaker.metrics().calls, asyncio.get_running_loop().time()

    result, kinds, sent, recorded, end = run_virtual(main())
    # two tries went through the breaker; the slow one was cancelled: one outcome recorded
    assert result == "answer" and sent == 2 and kinds == ["success"] and recorded == 1
    assert end == pytest.approx(0.15)


def test_bulkhead_for_threads_limits_concurrency_and_rejects_without_waiting():
    import threading

    bulkhead = Bulkhead(max_concurrent_calls=3, max_wait_duration=0)
    inside, release = threading.Barrier(4), threading.Event()

    def hold():
        inside.wait(5)
        release.wait(5)
        return "done"

    results = []
    threads = [threading.Thread(target=lambda: results.append(bulkhead.call(hold))) for _ in range(3)]
    for t in threads:
        t.start()
    inside.wait(5)  # all three are inside: the bulkhead is full
    with pytest.raises(BulkheadFullError):
        bulkhead.call(lambda: "never")
    assert bulkhead.in_use == 3 and bulkhead.rejected == 1
    release.set()
    for t in threads:
        t.join(5)
    assert results == ["done"] * 3
    assert bulkhead.in_use == 0 and bulkhead.max_in_use == 3
    assert bulkhead.call(lambda: "free again") == "free again"


def test_bulkhead_for_threads_waits_for_a_slot_when_allowed():
    import threading

    bulkhead = Bulkhead(max_concurrent_calls=1, max_wait_duration=5)
    entered, release = threading.Event(), threading.Event()

    def hold():
        entered.set()
        release.wait(5)
        return "first"

    first = threading.Thread(target=bulkhead.call, args=(hold,))
    first.start()
    entered.wait(5)
    threading.Timer(0.05, release.set).start()  # frees the slot while the second caller waits
    assert bulkhead.call(lambda: "second") == "second"
    first.join(5)
    assert bulkhead.rejected == 0 and bulkhead.max_in_use == 1


def test_bulkhead_can_be_reused_by_a_later_event_loop():
    """A notebook builds a bulkhead once and runs several simulations with it: each
    ``run_virtual`` is a new loop, and an asyncio semaphore binds to the first one."""
    bulkhead = Bulkhead(max_concurrent_calls=1, max_wait_duration=5)

    async def main():
        loop = asyncio.get_running_loop()
        ends = []

        async def one():
            await bulkhead.call_async(asyncio.sleep, 1)
            ends.append(loop.time())

        await asyncio.gather(one(), one())
        return ends

    assert run_virtual(main()) == [1.0, 2.0]
    assert run_virtual(main()) == [1.0, 2.0]
    assert bulkhead.max_in_use == 1 and bulkhead.in_use == 0
