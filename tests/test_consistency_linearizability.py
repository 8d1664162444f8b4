"""The linearizability checker against histories whose verdict is known by construction or by brute force."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbook.consistency import (History, Operation, check_linearizable, linearizable_by_brute_force, search)
from workbook.core import ParameterError, Verdict

W, R = "write", "read"


def op(p, kind, value, start, end):
    return Operation(p, kind, value, start, end)


def test_sequential_history_is_linearizable():
    h = [op("a", W, 1, 0, 1), op("b", R, 1, 2, 3), op("a", W, 2, 4, 5), op("b", R, 2, 6, 7)]
    v = check_linearizable(h)
    assert isinstance(v, Verdict) and v.passed
    assert [o.value for o in v.numbers["order"]] == [1, 1, 2, 2]


def test_a_stale_read_after_the_write_completed_is_not_linearizable_and_says_why():
    h = [op("w", W, 1, 0, 1), op("r", R, None, 2, 3)]
    v = check_linearizable(h)
    assert not v.passed
    cex = v.numbers["counterexample"]
    assert [str(o) for o in cex.order] == ["w: write(1) [0, 1]"] and cex.state == 1
    assert "returned None but the register holds 1" in str(v)


def test_a_read_concurrent_with_a_write_may_return_old_or_new():
    for seen in (None, 1):
        assert check_linearizable([op("w", W, 1, 0, 10), op("r", R, seen, 2, 3)]).passed
    assert not check_linearizable([op("w", W, 1, 0, 10), op("r", R, 7, 2, 3)]).passed


def test_new_then_old_while_a_write_is_in_flight_is_not_linearizable():
    h = [op("w", W, 1, 0, 10), op("a", R, 1, 1, 2), op("b", R, None, 3, 4)]
    v = check_linearizable(h)
    assert not v.passed and not linearizable_by_brute_force(h)
    assert "b: read -> None" in str(v)


def test_pending_writes_may_or_may_not_have_happened():
    assert check_linearizable([op("w", W, 1, 0, None), op("r", R, 1, 5, 6)]).passed
    assert check_linearizable([op("w", W, 1, 0, None), op("r", R, None, 5, 6)]).passed
    # but once seen, it cannot be unseen
    assert not check_linearizable([op("w", W, 1, 0, None), op("r", R, 1, 5, 6), op("r", R, None, 7, 8)]).passed
    # a pending read constrains nothing
    assert check_linearizable([op("w", W, 1, 0, 1), op("r", R, None, 2, None)]).passed


def test_history_recorder_and_bad_input():
    h = History()
    a = h.invoke("p", "write", 3, 0.0)
    b = h.invoke("q", "read", None, 0.5)
    h.complete(a, 1.0)
    h.complete(b, 1.5, 3)
    assert [str(o) for o in h] == ["p: write(3) [0, 1]", "q: read -> 3 [0.5, 1.5]"]
    assert check_linearizable(h).passed
    with pytest.raises(ParameterError, match="handle"):
        h.complete(a, 2.0)
    with pytest.raises(ParameterError, match="kind"):
        Operation("p", "cas", 1, 0, 1)
    with pytest.raises(ParameterError, match="complete"):
        Operation("p", "read", 1, 5, 1)
    with pytest.raises(TypeError, match=r"history\[0\]"):
        check_linearizable([("p", "read")])
    with pytest.raises(ParameterError, match="max_states"):
        search([], max_states=0)


def test_an_exhausted_budget_says_unknown():
    h = [op(i, W, i, 0, 10) for i in range(8)] + [op("r", R, 99, 11, 12)]
    v = check_linearizable(h, max_states=10)
    assert not v.passed and "unknown" in str(v)


# -- generated histories ------------------------------------------------------------

@st.composite
def linearizable_histories(draw, max_ops=8):
    """Pick a linearization point inside each interval; reads return what the sequential run gives.

    The operations come out in linearization order."""
    n = draw(st.integers(1, max_ops))
    raw = []
    for i in range(n):
        start = draw(st.integers(0, 20))
        length = draw(st.integers(0, 8))
        point = draw(st.integers(start, start + length))
        kind = draw(st.sampled_from([W, R]))
        pending = kind == W and draw(st.integers(0, 5)) == 0
        raw.append((point, i, kind, start, None if pending else start + length))
    state, ops = None, []
    for point, i, kind, start, end in sorted(raw):
        if kind == W:
            state = i   # unique values
            ops.append(op(f"p{i}", W, i, start, end))
        else:
            ops.append(op(f"p{i}", R, state, start, end))
    return ops


@settings(max_examples=60, deadline=None)
@given(linearizable_histories())
def test_histories_linearizable_by_construction_pass(h):
    assert check_linearizable(h).passed


@st.composite
def arbitrary_histories(draw, max_ops=6):
    n = draw(st.integers(1, max_ops))
    ops = []
    for i in range(n):
        start = draw(st.integers(0, 10))
        end = start + draw(st.integers(0, 6))
        kind = draw(st.sampled_from([W, R]))
        if kind == W:
            ops.append(op(f"p{i}", W, draw(st.integers(1, 2)), start, None if draw(st.integers(0, 6)) == 0 else end))
        else:
            ops.append(op(f"p{i}", R, draw(st.sampled_from([None, 1, 2])), start, end))
    return ops


@settings(max_examples=150, deadline=None)
@given(arbitrary_histories())
def test_search_agrees_with_brute_force_over_all_orders(h):
    assert check_linearizable(h).passed == linearizable_by_brute_force(h)


@settings(max_examples=40, deadline=None)
@given(linearizable_histories(max_ops=7), st.data())
def test_a_sequential_history_with_a_wrong_read_fails(h, data):
    """Made sequential (no overlap) and with one read's value changed to a never-written value: never linearizable."""
    seq = [op(o.process, o.kind, o.value, 10 * i, 10 * i + 1) for i, o in enumerate(h)]   # in linearization order
    reads = [i for i, o in enumerate(seq) if o.kind == R]
    if not reads:
        return
    i = data.draw(st.sampled_from(reads))
    seq[i] = op(seq[i].process, R, "never written", seq[i].invoke, seq[i].complete)
    v = check_linearizable(seq)
    assert check_linearizable(seq[:i] + seq[i + 1:]).passed
    assert not v.passed and "never written" in str(v.numbers["counterexample"])
    assert len(v.numbers["counterexample"].order) == i   # stuck exactly at the wrong read


def test_a_long_history_with_bounded_concurrency_is_checked():
    """1,000 operations, three at a time: the memoised search stays near-linear."""
    ops, state = [], None
    for i in range(1000):
        start = i * 1.0
        if i % 3 == 0:
            state = i
            ops.append(op(f"p{i % 3}", W, i, start, start + 2.5))
        else:
            ops.append(op(f"p{i % 3}", R, state, start, start + 2.5))
    v = check_linearizable(ops)
    assert v.passed and v.numbers["states_explored"] < 20_000
