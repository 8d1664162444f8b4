"""A linearizability checker for register histories, in the spirit of Knossos and Porcupine.

A history is linearizable if every operation can be given one instant between its
invocation and its completion such that, taken in the order of those instants, the
operations are a legal run of a single-copy register (every read returns the last value
written before it, or the initial value). Pending operations (never completed) may be
placed anywhere after their invocation or left out: a pending write may have happened.

The search is Wing and Gong's (1993) with the memoisation of Lowe (2017) that Porcupine
uses: repeatedly pick a *minimal* operation (one that no other unplaced operation precedes
in real time), apply it to the model, and backtrack when the model refuses; a
``(set of placed operations, register value)`` pair already explored is never explored
again. It is exponential in the worst case (many mutually concurrent operations), but
fast on histories where concurrency is bounded; ``max_states`` bounds the search and the
verdict then says the answer is unknown.

When the history is not linearizable the verdict carries a ``Counterexample``: the
longest legal order found, the register value it leaves, and why each operation that
could come next cannot (``"p2: read -> 0 ... returned 0 but the register holds 1"``).

``linearizable_by_brute_force`` tries every order (small histories only): the tests use it
to check the search.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbook.consistency.history import History, Operation
from workbook.core.params import check_int
from workbook.core.verdict import Verdict

INF = (float("inf"), 0)


def _inv(op: Operation) -> tuple:
    return op.invoke, op.invoke_seq


def _comp(op: Operation) -> tuple:
    return INF if op.complete is None else (op.complete, op.complete_seq)


def _step(state: Any, op: Operation) -> tuple[bool, Any]:
    """The single-copy register: a write sets the value; a read must return it."""
    if op.kind == "write":
        return True, op.value
    return op.value == state, state


def _why(state: Any, op: Operation) -> str:
    return f"{op} returned {op.value!r} but the register holds {state!r}"


@dataclass(frozen=True)
class Counterexample:
    """Where every attempt got stuck: the longest legal order and why nothing can follow it."""

    order: tuple[Operation, ...]
    state: Any
    blocked: tuple[str, ...]
    unplaced: int

    def __str__(self) -> str:
        lines = [f"longest legal order ({len(self.order)} ops), leaving the register at {self.state!r}:"]
        lines += [f"  {i + 1}. {op}" for i, op in enumerate(self.order)]
        lines.append(f"then none of the {self.unplaced} remaining operations can go next:")
        lines += [f"  - {why}" for why in self.blocked]
        return "\n".join(lines)


@dataclass
class SearchResult:
    linearizable: bool | None                      # None: the search ran out of budget
    order: tuple[Operation, ...] = ()               # a witness order when linearizable
    counterexample: Counterexample | None = None
    explored: int = 0
    numbers: dict = field(default_factory=dict)


def _prepare(history) -> list[Operation]:
    ops = list(history.operations if isinstance(history, History) else history)
    for i, op in enumerate(ops):
        if not isinstance(op, Operation):
            raise TypeError(f"history[{i}] must be an Operation, got {type(op).__name__}")
    # a pending read returned nothing anyone saw: it constrains nothing
    return [op for op in ops if not (op.pending and op.kind == "read")]


def search(history: History | Iterable[Operation], *, initial: Any = None, max_states: int = 1_000_000) -> SearchResult:
    """Wing-Gong search with memoisation; see the module docstring."""
    ops = sorted(_prepare(history), key=_inv)
    max_states = check_int("max_states", max_states, minimum=1)
    n = len(ops)
    inv = [_inv(o) for o in ops]
    comp = [_comp(o) for o in ops]
    required = 0
    for i, o in enumerate(ops):
        if not o.pending:
            required |= 1 << i
    seen: set[tuple[int, Any]] = set()
    best: tuple[int, Any, Any] = (-1, None, initial)
    # explicit stack of (placed mask, state, order so far as a linked list (i, rest), its length)
    stack: list[tuple[int, Any, Any, int]] = [(0, initial, None, 0)]
    while stack:
        mask, state, order, depth = stack.pop()
        if mask & required == required:
            return SearchResult(True, tuple(ops[i] for i in _unlink(order)), explored=len(seen))
        key = (mask, _hashable(state))
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > max_states:
            return SearchResult(None, explored=len(seen))
        if depth > best[0]:
            best = (depth, order, state)
        children = []
        for i in _minimal(mask, inv, comp, n):
            ok, nxt = _step(state, ops[i])
            if ok:
                children.append((mask | 1 << i, nxt, (i, order), depth + 1))
        stack.extend(reversed(children))   # try in invocation order
    _, order, state = best
    placed_order = _unlink(order)
    placed = 0
    for i in placed_order:
        placed |= 1 << i
    blocked = tuple(_why(state, ops[i]) for i in _minimal(placed, inv, comp, n) if not _step(state, ops[i])[0])
    if not blocked:
        blocked = ("every order that places the next operation fails later (see the order above)",)
    remaining = sum(1 for i in range(n) if not placed >> i & 1 and not ops[i].pending)
    cex = Counterexample(tuple(ops[i] for i in placed_order), state, blocked, remaining)
    return SearchResult(False, counterexample=cex, explored=len(seen))


def _minimal(mask: int, inv: list, comp: list, n: int) -> list[int]:
    """Unplaced operations that no other unplaced operation precedes (ops sorted by invocation).

    One scan from the first unplaced operation: the running minimum completion among the
    unplaced is the horizon; once an invocation lies beyond it, so do all later ones, and
    their completions cannot lower it.
    """
    i = (~mask & (mask + 1)).bit_length() - 1   # lowest unplaced index
    horizon = INF
    seen = []
    while i < n and inv[i] <= horizon:
        if not mask >> i & 1:
            if comp[i] < horizon:
                horizon = comp[i]
            seen.append(i)
        i += 1
    return [i for i in seen if inv[i] <= horizon]


def _unlink(order) -> list[int]:
    out = []
    while order is not None:
        i, order = order
        out.append(i)
    return out[::-1]


def _hashable(value: Any) -> Any:
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def check_linearizable(history: History | Iterable[Operation], *, initial: Any = None, max_states: int = 1_000_000,
                       subject: str = "history") -> Verdict:
    """The verdict on a register history; ``numbers['counterexample']`` when it is not linearizable."""
    ops = list(history.operations if isinstance(history, History) else history)
    result = search(ops, initial=initial, max_states=max_states)
    numbers = {"operations": len(ops), "pending": sum(o.pending for o in ops), "states_explored": result.explored}
    if result.linearizable is None:
        return Verdict.of(f"{subject} ({len(ops)} operations) is linearizable",
                          [("search finished", False, f"gave up after {max_states} states: unknown")],
                          numbers=numbers, hint="raise max_states, or check a shorter history")
    if result.linearizable:
        return Verdict.of(f"{subject} ({len(ops)} operations) is linearizable",
                          [("linearizable", True, f"a legal order exists ({result.explored} states explored)")],
                          numbers=numbers | {"order": result.order})
    cex = result.counterexample
    return Verdict.of(f"{subject} ({len(ops)} operations) is linearizable",
                      [("linearizable", False, str(cex))], numbers=numbers | {"counterexample": cex},
                      hint="a read saw a value that no single order of the operations, consistent with real time, "
                           "can explain")


def linearizable_by_brute_force(history: Sequence[Operation], *, initial: Any = None) -> bool:
    """Try every subset of pending writes and every order: exponential, for small histories only."""
    ops = _prepare(history)
    if len(ops) > 9:
        raise ValueError(f"linearizable_by_brute_force: {len(ops)} operations is too many (at most 9)")
    done = [o for o in ops if not o.pending]
    pending = [o for o in ops if o.pending]
    for k in range(len(pending) + 1):
        for chosen in itertools.combinations(pending, k):
            for order in itertools.permutations(done + list(chosen)):
                if _respects_real_time(order) and _legal(order, initial):
                    return True
    return False


def _respects_real_time(order: Sequence[Operation]) -> bool:
    for i, later in enumerate(order):
        for earlier in order[i + 1:]:
            if _comp(earlier) < _inv(later):
                return False   # `earlier` finished before `later` began but comes after it
    return True


def _legal(order: Sequence[Operation], state: Any) -> bool:
    for op in order:
        ok, state = _step(state, op)
        if not ok:
            return False
    return True
