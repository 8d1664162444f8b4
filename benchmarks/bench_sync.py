"""Overhead of the resilience kit on the happy path, against pybreaker and tenacity.

Measured in the same run, on the same trivial function (returns a constant):

* breaker: ``CircuitBreaker.call`` in CLOSED (count window of 100, resilience4j defaults,
  ``WallClock``; with the default ``LoopClock`` outside a loop it costs more, see the
  table) against ``pybreaker.CircuitBreaker.call`` (defaults, in-memory storage).
  Target: ours at most 0.3x pybreaker's overhead (issue 8 point 4), reached through the
  window's public ``record`` and the clock's public ``now`` / ``reader`` (no copied window
  internals, no private asyncio call).
* retry: a successful call through ``Retry.call`` (3 attempts, full-jitter backoff,
  ``is_retryable``) against ``tenacity.Retrying`` configured alike
  (``stop_after_attempt(3)``, ``wait_random_exponential``, ``retry_if_exception(is_retryable)``).
  Target: ours at most 0.1x tenacity's overhead.

Overhead = time per call through the component minus time per bare call; each figure is
the best of several repeats (``timeit`` style), so noise from other processes inflates it
rarely and only upwards.
"""

import asyncio
import time

import pybreaker
import tenacity

from workbook.core.clock import LoopClock, WallClock
from workbook.resilience import Backoff, CircuitBreaker, Retry, is_retryable

N = 50_000
REPEATS = 9


def target():
    return 42


def per_call(fn, n=N) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def measure(repeats=REPEATS) -> dict[str, float]:
    """Best time per call of each candidate; the candidates take turns within every repeat,
    so a burst of load from another process hits all of them alike."""
    ours = CircuitBreaker("bench", clock=WallClock())
    ours_loopclock = CircuitBreaker("bench-loopclock", clock=LoopClock())
    theirs = pybreaker.CircuitBreaker()
    retry = Retry(3, Backoff(0.1, 2, 10, "full"), clock=WallClock())
    tretry = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_random_exponential(0.1, 10),
                               retry=tenacity.retry_if_exception(is_retryable), reraise=True)
    candidates = {
        "bare": target,
        "ours": lambda: ours.call(target),
        "ours_loopclock": lambda: ours_loopclock.call(target),
        "pybreaker": lambda: theirs.call(target),
        "retry": lambda: retry.call(target),
        "tenacity": lambda: tretry(target),
    }
    best = {name: float("inf") for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            best[name] = min(best[name], per_call(fn, N if name != "tenacity" else N // 5))
    bare = best.pop("bare")
    out = {"bare": bare, **{name: value - bare for name, value in best.items()}}
    out["ours_inloop"] = asyncio.run(_in_loop(repeats)) - bare
    return out


async def _in_loop(repeats) -> float:
    """Best time per call with the default LoopClock while a loop runs (the breaker then
    reads ``loop.time``, resolved once per call through ``LoopClock.reader``)."""
    breaker = CircuitBreaker("bench-inloop")
    call = lambda: breaker.call(target)  # noqa: E731
    return min(per_call(call) for _ in range(repeats))


def run() -> str:
    m = measure()
    us = {k: v * 1e6 for k, v in m.items()}
    b_ratio = m["ours"] / m["pybreaker"]
    r_ratio = m["retry"] / m["tenacity"]
    lines = [
        "## Resilience kit overhead (chapter 2)",
        "",
        f"Happy path, {N:,} calls per repeat, best of {REPEATS}; overhead = per call through the component "
        f"minus a bare call ({us['bare'] * 1000:.0f} ns).",
        "",
        "| component | overhead per call | ratio | target | met |",
        "|---|---:|---:|---:|:-:|",
        f"| `CircuitBreaker.call` (CLOSED, WallClock) | {us['ours']:.3f} µs | {b_ratio:.2f}x pybreaker | <= 0.3x | "
        f"{'yes' if b_ratio <= 0.3 else 'NO'} |",
        f"| `CircuitBreaker.call` (CLOSED, default LoopClock outside a loop) | {us['ours_loopclock']:.3f} µs | "
        f"{m['ours_loopclock'] / m['pybreaker']:.2f}x pybreaker | | |",
        f"| `CircuitBreaker.call` (CLOSED, default LoopClock inside a running loop) | {us['ours_inloop']:.3f} µs | "
        f"{m['ours_inloop'] / m['pybreaker']:.2f}x pybreaker | | |",
        f"| `pybreaker.CircuitBreaker.call` (CLOSED) | {us['pybreaker']:.3f} µs | 1 | | |",
        f"| `Retry.call` (success at first try) | {us['retry']:.3f} µs | {r_ratio:.3f}x tenacity | <= 0.1x | "
        f"{'yes' if r_ratio <= 0.1 else 'NO'} |",
        f"| `tenacity.Retrying` (success at first try) | {us['tenacity']:.3f} µs | 1 | | |",
        "",
        "How the breaker gets there without breaking an abstraction: the CLOSED fast path caches the clock's",
        "bound `now` (`WallClock.now` *is* `time.monotonic`), records through `CountWindow.record(code)`,",
        "which answers whether a threshold may have been reached, and takes the breaker's lock only then;",
        "the window's common case (full, a fast success replacing one) takes no lock at all (its slot comes",
        "from `next()` on an `itertools.cycle`, atomic under the GIL). Measured with `timeit` on the pieces:",
        "call and argument passing ~65 ns, two clock readings ~90 ns, `record` ~70 ns, the rest attribute reads.",
        "",
        "Remaining cost with the default `LoopClock`: `LoopClock.reader()` resolves the running loop through",
        "the public `asyncio.get_running_loop()`, ~200 ns per call here inside a loop (CPython 3.11 checks",
        "the process id on every lookup) and ~210-350 ns outside one (the `RuntimeError` it raises), plus",
        "`loop.time()` being a Python method (~60 ns per reading, two readings). The private",
        "`asyncio._get_running_loop` the breaker used before is no longer called; for speed outside a loop,",
        "pass `clock=WallClock()`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
