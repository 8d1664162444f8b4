"""The virtual-time loop runs ordinary asyncio code instantly and deterministically."""

import asyncio
import time

import pytest

from workbook.core import VirtualTimeDeadlock, run_virtual


def test_sleep_wait_for_call_later_queue_event_in_virtual_time():
    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        await asyncio.sleep(2.5)
        seen.append(("slept", loop.time()))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(100), 3)
        seen.append(("wait_for timed out", loop.time()))
        try:
            async with asyncio.timeout(1.5):
                await asyncio.Event().wait()
        except TimeoutError:
            seen.append(("timeout() fired", loop.time()))
        queue = asyncio.Queue()
        loop.call_later(7, queue.put_nowait, "item")
        seen.append((await queue.get(), loop.time()))
        event = asyncio.Event()
        loop.call_at(loop.time() + 0.25, event.set)
        await event.wait()
        seen.append(("event", loop.time()))
        return seen

    start = time.perf_counter()
    seen = run_virtual(main())
    assert time.perf_counter() - start < 5  # generous: nothing waited for real (14 s simulated)
    assert seen == [
        ("slept", 2.5),
        ("wait_for timed out", 5.5),
        ("timeout() fired", 7.0),
        ("item", 14.0),
        ("event", 14.25),
    ]


def test_timers_at_equal_times_run_in_insertion_order():
    async def main():
        order = []
        loop = asyncio.get_running_loop()
        for i in range(50):
            loop.call_at(10.0, order.append, i)
        tasks = [asyncio.create_task(asyncio.sleep(10, result=f"t{i}")) for i in range(5)]
        done = await asyncio.gather(*tasks)
        return order, done

    order, done = run_virtual(main)
    assert order == list(range(50))
    assert done == [f"t{i}" for i in range(5)]


def test_cancelled_timers_do_not_fire_or_move_the_clock():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        handles = [loop.call_later(100 + i, fired.append, i) for i in range(300)]
        for h in handles[:-1]:
            h.cancel()
        await asyncio.sleep(1)
        t_after_sleep = loop.time()
        await asyncio.sleep(500)
        return fired, t_after_sleep

    fired, t = run_virtual(main)
    assert fired == [299]
    assert t == 1.0


def test_start_time_and_many_tasks():
    async def main():
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(*(asyncio.sleep(i % 7, result=i) for i in range(2000)))
        return loop.time(), sum(results)

    assert run_virtual(main(), start=1000.0) == (1006.0, sum(range(2000)))


def test_deadlock_is_reported_not_hung():
    async def main():
        await asyncio.sleep(3)
        await asyncio.Event().wait()

    with pytest.raises(VirtualTimeDeadlock, match=r"t=3\.000000s"):
        run_virtual(main)


def test_exceptions_propagate():
    async def main():
        await asyncio.sleep(1)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_virtual(main)


def test_runs_inside_an_already_running_loop_like_a_jupyter_kernel():
    async def inner():
        await asyncio.sleep(60)
        return asyncio.get_running_loop().time()

    async def kernel_cell():
        # a Jupyter cell: a real loop is running in this thread
        return run_virtual(inner)

    assert asyncio.run(kernel_cell()) == 60.0


def test_rejects_non_coroutines():
    with pytest.raises(TypeError, match="coroutine"):
        run_virtual(42)


def test_work_in_a_thread_is_awaited_not_taken_for_a_deadlock():
    """``asyncio.to_thread`` (and a real connection's DNS lookup) finish outside the loop:
    with no timer pending the loop must wait for them, not declare a deadlock."""
    import threading

    release = threading.Event()

    def blocking():
        release.wait(10)
        return 42

    async def main():
        threading.Timer(0.02, release.set).start()  # the thread is still busy when the loop idles
        result = await asyncio.to_thread(blocking)
        return result, asyncio.get_running_loop().time()

    assert run_virtual(main()) == (42, 0.0)  # no virtual time passed


def test_a_lost_message_is_still_a_deadlock_after_thread_work():
    async def main():
        await asyncio.to_thread(lambda: None)
        await asyncio.Event().wait()

    with pytest.raises(VirtualTimeDeadlock):
        run_virtual(main())
