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


# --- the fast paths keep asyncio's order and its error handling ---------------------------


def test_a_sleeper_resumes_after_a_callback_due_at_the_same_instant():
    """Timers due together run in insertion order; a sleeper resumes after all of them
    (its wake-up is queued behind them), as through asyncio's own ready queue."""

    async def main():
        loop = asyncio.get_running_loop()
        order = []

        async def sleeper(name):
            await asyncio.sleep(5)
            order.append(name)

        a = asyncio.create_task(sleeper("A"))
        await asyncio.sleep(0)  # A's timer is scheduled first
        loop.call_at(5.0, order.append, "callback")
        b = asyncio.create_task(sleeper("B"))
        loop.call_at(5.0, loop.call_soon, order.append, "soon from a timer")
        await asyncio.gather(a, b)
        return order, loop.time()

    assert run_virtual(main) == (["callback", "A", "soon from a timer", "B"], 5.0)


def test_a_lone_timer_runs_before_what_it_makes_ready():
    async def main():
        loop = asyncio.get_running_loop()
        order = []

        def tick(i):
            order.append(("tick", i, loop.time()))
            loop.call_soon(order.append, ("soon", i))
            if i < 3:
                loop.call_later(1, tick, i + 1)

        loop.call_later(1, tick, 1)
        await asyncio.sleep(10)
        return order

    assert run_virtual(main) == [
        ("tick", 1, 1.0), ("soon", 1), ("tick", 2, 2.0), ("soon", 2), ("tick", 3, 3.0), ("soon", 3),
    ]


def test_a_failing_timer_callback_goes_to_the_exception_handler_and_the_loop_goes_on():
    async def main():
        loop = asyncio.get_running_loop()
        caught = []
        loop.set_exception_handler(lambda _loop, context: caught.append((str(context["exception"]), loop.time())))
        loop.call_later(1, lambda: 1 / 0)  # alone at its instant
        loop.call_at(2, lambda: [][0])  # tied with the next one
        loop.call_at(2, lambda: None)
        await asyncio.sleep(3)
        return caught

    assert run_virtual(main) == [("division by zero", 1.0), ("list index out of range", 2.0)]


def test_a_cancelled_sleep_and_a_cancelled_lone_timer():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        sleeper = asyncio.create_task(asyncio.sleep(10))
        loop.call_later(1, sleeper.cancel)
        with pytest.raises(asyncio.CancelledError):
            await sleeper
        t_cancelled = loop.time()
        loop.call_later(5, fired.append, "no").cancel()
        await asyncio.sleep(6)
        return t_cancelled, fired, loop.time()

    assert run_virtual(main) == (1.0, [], 7.0)


def test_deadlock_when_only_cancelled_timers_are_left():
    async def main():
        loop = asyncio.get_running_loop()
        loop.call_later(10, print).cancel()  # cancelled: no wake-up, no time jump
        await asyncio.Event().wait()

    with pytest.raises(VirtualTimeDeadlock, match=r"t=0\.000000s"):
        run_virtual(main)


def test_a_real_socket_reader_is_served_once_and_waited_for():
    """A registered socket keeps the loop alive (waiting for real) when no timer is
    pending; its data is read while virtual time stands still, by one call of the
    reader (the loop used to poll again before running it and call it twice)."""
    import socket
    import threading

    async def main():
        loop = asyncio.get_running_loop()
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        calls, got = [], loop.create_future()

        def on_readable():
            try:
                calls.append(reader.recv(16))
            except BlockingIOError:
                calls.append("called with nothing to read")
            if not got.done():
                got.set_result(None)

        loop.add_reader(reader, on_readable)
        threading.Timer(0.02, writer.send, (b"ping",)).start()  # arrives while the loop idles
        try:
            await got
            await asyncio.sleep(0)
            return calls, loop.time()
        finally:
            loop.remove_reader(reader)
            reader.close()
            writer.close()

    assert run_virtual(main) == ([b"ping"], 0.0)


def test_asyncio_streams_over_127_0_0_1_under_virtual_time():
    async def main():
        async def echo(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            writer.write(b"hello\n")
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await writer.wait_closed()
        return line

    assert run_virtual(main) == b"HELLO\n"


# --- the loop's C-callable shortcuts ---------------------------------------------------


def test_debug_mode_and_subclass_overrides_still_apply():
    from workbook.core import VirtualTimeLoop

    class Custom(VirtualTimeLoop):
        def create_future(self):
            future = super().create_future()
            future.tag = "custom"
            return future

    loop = Custom()
    try:
        assert loop.get_debug() is False
        loop.set_debug(True)
        assert loop.get_debug() is True
        loop.set_debug(False)
        assert loop.get_debug() is False
        assert loop.run_until_complete(asyncio.sleep(1, result=loop.create_future().tag)) == "custom"
        assert loop.time() == 1.0
    finally:
        loop.close()


def test_get_running_loop_is_the_virtual_loop_inside_and_nothing_outside():
    import sys

    from workbook.core import VirtualTimeLoop

    async def main():
        loop = asyncio.get_running_loop()
        nested = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="running event loop"):
            asyncio.run(nested)  # a nested run is refused, as with asyncio's own check
        nested.close()
        return type(loop), asyncio.events._get_running_loop() is loop, asyncio.get_running_loop() is loop

    assert run_virtual(main) == (VirtualTimeLoop, True, True)
    assert asyncio._get_running_loop() is None
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
    # the shortcut exists only where CPython's own function makes a system call (3.11)
    assert getattr(asyncio.get_running_loop, "_virtual_time_shortcut", False) == (sys.version_info < (3, 12))


def test_a_virtual_loop_in_a_worker_thread_is_invisible_to_other_threads():
    import threading

    release, inside, seen = threading.Event(), threading.Event(), {}

    async def main():
        seen["worker"] = asyncio.get_running_loop()
        inside.set()
        await asyncio.to_thread(release.wait, 10)  # the loop keeps running, waiting for the job

    worker = threading.Thread(target=run_virtual, args=(main,))
    worker.start()
    try:
        assert inside.wait(10)
        assert asyncio._get_running_loop() is None  # this thread runs no loop
        outer = asyncio.new_event_loop()
        try:
            assert outer.run_until_complete(_current_loop()) is outer
        finally:
            outer.close()
    finally:
        release.set()
        worker.join(10)
    assert type(seen["worker"]).__name__ == "VirtualTimeLoop"


async def _current_loop():
    return asyncio.get_running_loop()


def test_a_forked_child_has_no_running_loop():
    import os

    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")

    async def main():
        pid = os.fork()
        if pid == 0:  # the child: asyncio's running loop belongs to the parent
            os._exit(0 if asyncio._get_running_loop() is None else 1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    assert run_virtual(main) == 0


def test_the_executor_is_joined_without_a_virtual_timeout():
    """Python 3.12+'s Runner passes shutdown_default_executor a 300 s timeout: in virtual
    time the clock would jump there at once and abandon a thread still finishing."""
    import threading
    import warnings

    from workbook.core import VirtualTimeLoop

    loop = VirtualTimeLoop()
    release = threading.Event()
    try:
        job = loop.run_in_executor(None, release.wait, 10)
        threading.Timer(0.05, release.set).start()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loop.run_until_complete(loop.shutdown_default_executor(300))
        assert job.done() and job.result() is True
        assert loop.time() == 0.0
    finally:
        release.set()
        loop.close()
