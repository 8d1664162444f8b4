"""The replicated register over the simulated network: what N, R, W and write-back guarantee."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbook.consistency import (Quorum, QuorumUnavailable, ReplicatedRegister, check_linearizable,
                                  stale_read_probability)
from workbook.core import ParameterError, run_virtual, stream
from workbook.core.simnet import SimNetwork

FAST, SLOW = 0.001, 1.0


@pytest.mark.parametrize("n,r,w,field", [(0, 1, 1, "n"), (3, 0, 1, "r"), (3, 4, 1, "r"), (3, 1, 0, "w"),
                                         (3, 1, 4, "w"), (3, 1.5, 1, "r")])
def test_quorum_settings_are_checked(n, r, w, field):
    with pytest.raises(ParameterError, match=f"'{field}'"):
        Quorum(n, r, w)


def test_register_bad_input():
    net = SimNetwork()
    with pytest.raises(ParameterError, match="mode"):
        ReplicatedRegister(net, Quorum(3, 2, 2), mode="paxos")
    with pytest.raises(ParameterError, match="quorum"):
        ReplicatedRegister(net, (3, 2, 2))


def _links(net, reg, client, fast):
    for i, r in enumerate(reg.replicas):
        net.set_latency(client, r, FAST if i in fast else SLOW)


def test_r1_w1_gives_a_stale_read():
    async def main():
        net = SimNetwork(0, latency=FAST)
        reg = ReplicatedRegister(net, Quorum(3, 1, 1), timeout=5)
        writer, reader = reg.client("writer"), reg.client("reader")
        _links(net, reg, "writer", {0})
        _links(net, reg, "reader", {2})
        await writer.write(1)
        await asyncio.sleep(0.01)
        got = await reader.read()
        await asyncio.sleep(3)
        return got, reg

    got, reg = run_virtual(main())
    assert got is None                                  # the write had completed; the read missed it
    v = check_linearizable(reg.history)
    assert not v.passed and "returned None but the register holds 1" in str(v)
    assert all(value == 1 for _, value in reg.stored.values())   # it does arrive everywhere, later


def _new_then_old(mode):
    async def main():
        net = SimNetwork(0, latency=FAST)
        reg = ReplicatedRegister(net, Quorum(3, 2, 2), mode=mode, timeout=5)
        writer, a, b = reg.client("writer"), reg.client("a"), reg.client("b")
        _links(net, reg, "writer", {0})     # the write reaches replica 0 at once, the others after 1 s
        _links(net, reg, "a", {0, 1})
        _links(net, reg, "b", {1, 2})
        task = asyncio.ensure_future(writer.write(1))
        while reg.stored["replica-0"][1] != 1:   # (ABD first asks a quorum for the newest stamp: 2 s)
            await asyncio.sleep(0.001)
        first = await a.read()
        second = await b.read()
        in_flight = not task.done()
        await task
        return first, second, in_flight, reg
    return run_virtual(main())


def test_quorums_alone_allow_new_then_old_while_a_write_is_in_flight():
    first, second, in_flight, reg = _new_then_old("plain")
    assert Quorum(3, 2, 2).overlapping and in_flight
    assert (first, second) == (1, None)
    v = check_linearizable(reg.history)
    assert not v.passed and "b: read -> None" in str(v)


def test_abd_write_back_makes_the_same_run_linearizable():
    first, second, in_flight, reg = _new_then_old("abd")
    assert in_flight and (first, second) == (1, 1)
    assert check_linearizable(reg.history).passed


def _random_run(mode, quorum, seed, clients=3, ops=6):
    async def main():
        net = SimNetwork(seed, latency={"kind": "exponential", "mean": 0.01})
        reg = ReplicatedRegister(net, quorum, mode=mode, timeout=10)
        rng = stream(seed, "workload")
        counter = iter(range(1, 1000))

        async def client(name):
            c = reg.client(name)
            for _ in range(ops):
                await asyncio.sleep(rng.expovariate(100))
                if rng.random() < 0.4:
                    await c.write(next(counter))
                else:
                    await c.read()

        await asyncio.gather(*(client(f"c{i}") for i in range(clients)))
        await asyncio.sleep(1)
        return reg
    return run_virtual(main())


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([Quorum(3, 2, 2), Quorum(5, 3, 3), Quorum(3, 1, 3)]))
def test_abd_is_linearizable_on_every_generated_history(seed, quorum):
    reg = _random_run("abd", quorum, seed)
    v = check_linearizable(reg.history)
    assert v.passed, str(v)


def test_plain_r1_w1_is_caught_on_some_generated_history():
    verdicts = [check_linearizable(_random_run("plain", Quorum(3, 1, 1), seed).history).passed for seed in range(20)]
    assert not all(verdicts)


def test_a_write_that_misses_its_quorum_stays_pending():
    async def main():
        net = SimNetwork(0, latency=FAST)
        reg = ReplicatedRegister(net, Quorum(3, 2, 2), timeout=0.5)
        c = reg.client("c")
        net.down("replica-1")
        net.down("replica-2")
        with pytest.raises(QuorumUnavailable, match="1 of the 2 replicas"):
            await c.write(1)
        return reg
    reg = run_virtual(main())
    [w] = reg.history.operations
    assert w.pending and reg.stored["replica-0"][1] == 1


def test_stale_read_probability():
    strict = stale_read_probability(Quorum(3, 2, 2), 0.0, trials=500)
    assert strict == 0.0
    loose = [stale_read_probability(Quorum(3, 1, 1), t, latency={"kind": "exponential", "mean": 0.01}, trials=2000)
             for t in (0.0, 0.01, 0.05)]
    assert loose[0] > 0.1 and loose[0] > loose[1] > loose[2]
    with pytest.raises(ParameterError, match="'t'"):
        stale_read_probability(Quorum(3, 1, 1), -1)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_abd_stays_linearizable_when_replicas_go_down_and_operations_time_out(seed):
    """Operations that miss their quorum stay pending in the history; the checker treats them as maybe-happened."""
    async def main():
        net = SimNetwork(seed, latency={"kind": "exponential", "mean": 0.02})
        reg = ReplicatedRegister(net, Quorum(3, 2, 2), mode="abd", timeout=0.3)
        rng = stream(seed, "workload")
        values = iter(range(1, 10**6))

        async def client(name):
            c = reg.client(name)
            for _ in range(10):
                await asyncio.sleep(rng.expovariate(50))
                try:
                    if rng.random() < 0.4:
                        await c.write(next(values))
                    else:
                        await c.read()
                except QuorumUnavailable:
                    pass

        async def faults():
            for _ in range(5):
                await asyncio.sleep(rng.expovariate(5))
                victim = rng.choice(reg.replicas)
                net.down(victim)
                await asyncio.sleep(rng.expovariate(5))
                net.up(victim)

        await asyncio.gather(faults(), *(client(f"c{i}") for i in range(4)))
        await asyncio.sleep(2)
        return reg

    reg = run_virtual(main())
    assert check_linearizable(reg.history).passed
