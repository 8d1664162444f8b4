"""core.stats, core.seeds and core.verdict: the pieces every chapter shares."""

import math
import random

import pytest

from workbook.core import Check, ParameterError, Verdict, derive_seed, quantile, quantiles, stream


def test_quantile_is_nearest_rank_in_any_order():
    values = [5, 1, 4, 2, 3]
    assert quantile(values, 0.5) == 3
    assert quantile(values, 0.0) == 1 and quantile(values, 1.0) == 5
    assert quantile(values, 0.2) == 1 and quantile(values, 0.21) == 2  # rank ceil(q n)
    assert quantile(range(1, 101), 0.99) == 99
    assert quantiles([3, 1, 2], [0.5, 1.0]) == [2, 3]


def test_quantile_matches_brute_force_definition():
    rng = random.Random(1)
    for _ in range(200):
        xs = [rng.randint(0, 50) for _ in range(rng.randint(1, 30))]
        q = rng.random()
        # the smallest observed value with at least a share q of observations at or below it
        want = min(x for x in xs if sum(y <= x for y in xs) >= q * len(xs))
        assert quantile(xs, q) == want


def test_quantile_edge_cases_are_explicit():
    assert math.isnan(quantile([], 0.5))
    assert quantile([1, math.inf], 1.0) == math.inf
    with pytest.raises(ParameterError, match="q\\[0\\]"):
        quantile([1, 2], 1.5)
    with pytest.raises(ParameterError, match="NaN"):
        quantile([1, math.nan, 2], 0.5)


def test_derived_seeds_are_stable_and_independent():
    assert derive_seed(7, "arrivals") == derive_seed(7, "arrivals")
    names = {derive_seed(s, label, i) for s in range(20) for label in ("a", "b") for i in range(20)}
    assert len(names) == 20 * 2 * 20
    # the old arithmetic made neighbouring seeds share streams; labels never collide with seeds
    assert derive_seed(1, 1) != derive_seed(2) and derive_seed(1, "1") != derive_seed(1, 1)
    assert stream(3, "x").random() == random.Random(derive_seed(3, "x")).random()
    assert derive_seed(0, "arrivals") == 0x1E1E6A0C2B5B1B52 or derive_seed(0, "arrivals") > 0  # 64-bit


def test_derived_seed_is_pinned_across_processes():
    # BLAKE2b, not hash(): this number must never change, or every notebook output would
    assert derive_seed(0) == 9523843951405948789


def test_derive_seed_rejects_bad_input():
    with pytest.raises(ParameterError, match="seed"):
        derive_seed(-1)
    with pytest.raises(ParameterError, match=r"labels\[1\]"):
        derive_seed(0, "ok", 1.5)


def test_verdict_passes_only_when_every_check_does():
    ok = Verdict.of("answer", [("a", True, "1 s"), Check("b", True)])
    bad = Verdict.of("answer", [("a", True, ""), ("b", False, "3 > 2")], hint="look at b")
    assert ok.passed and bool(ok) and not bad.passed and not bad
    assert bad.reasons == ["b: 3 > 2"]
    assert str(bad).splitlines() == ["FAIL: answer", "  [PASS] a", "  [FAIL] b: 3 > 2", "  hint: look at b"]
    assert "hint" not in str(Verdict.of("x", [("a", True, "")], hint="never shown"))
    assert not Verdict.of("nothing checked", [])
    assert not Verdict.rejected("answer", "no answer yet")


def test_stop_task_swallows_the_tasks_cancellation_not_the_callers():
    import asyncio

    from workbook.core import run_virtual
    from workbook.core.tasks import stop_task

    async def forever(log):
        try:
            await asyncio.sleep(1e9)
        finally:
            log.append("cleaned up")

    async def main():
        log = []
        await stop_task(None)
        task = asyncio.ensure_future(forever(log))
        await asyncio.sleep(1)
        await stop_task(task)  # no error: the cancellation was ours
        assert task.cancelled() and log == ["cleaned up"]

        # the caller itself cancelled while it waits for a task that takes a while to stop
        async def slow_to_stop():
            try:
                await asyncio.sleep(1e9)
            except asyncio.CancelledError:
                await asyncio.sleep(5)
                raise

        async def stopper(t):
            await stop_task(t)
            log.append("stopper went on")  # must not happen: stopper was cancelled

        inner = asyncio.ensure_future(slow_to_stop())
        await asyncio.sleep(1)
        outer = asyncio.ensure_future(stopper(inner))
        await asyncio.sleep(1)
        outer.cancel()
        await asyncio.sleep(10)
        return outer.cancelled(), log

    cancelled, log = run_virtual(main())
    assert cancelled and "stopper went on" not in log
