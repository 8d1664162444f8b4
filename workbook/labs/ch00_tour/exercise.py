"""Chapter 0's exercise: how far can the fan-out grow once every sub-request is hedged?

The notebook shows, for a per-backend stall probability ``p``, the fan-out at which each
percentile of a request becomes a stall (the median from k = 69 at p = 1 %). The exercise
asks something the notebook does not print: every sub-request is now *hedged* (sent to
two replicas at once, the first reply wins; replicas stall independently), so a
sub-request stalls only when both copies do, with probability ``p ** 2``. What is the
smallest fan-out at which at least half of all requests still meet a stall?

The checker recognises the tempting wrong answers and says why each is wrong: the
unhedged answer (the one printed in the notebook), the linear approximation
``k * p**2 >= share`` (it ignores that several stalls can hit one request), the
"hedging doubles the fan-out" reading ``1 - (1 - p)**(2k)``, an off-by-one, a float.
"""

from __future__ import annotations

import math

from workbook.core.params import check_number
from workbook.core.verdict import Verdict
from workbook.labs.ch00_tour.experiments import slow_share_theory

SUBJECT = "smallest fan-out at which half of all hedged requests meet a stall"


def smallest_fanout(p_slow: float, share: float) -> int:
    """The smallest k with 1 - (1 - p_slow)^k >= share."""
    p_slow = check_number("p_slow", p_slow, minimum=0, maximum=1, min_exclusive=True, max_exclusive=True)
    share = check_number("share", share, minimum=0, maximum=1, min_exclusive=True, max_exclusive=True)
    k = max(1, math.ceil(math.log(1 - share) / math.log(1 - p_slow)))
    while k > 1 and slow_share_theory(k - 1, p_slow) >= share:
        k -= 1
    while slow_share_theory(k, p_slow) < share:
        k += 1
    return k


def hedged_stall_probability(p_slow: float, copies: int = 2) -> float:
    """A sub-request sent to ``copies`` independent replicas stalls only if all of them do."""
    p_slow = check_number("p_slow", p_slow, minimum=0, maximum=1)
    return p_slow ** copies


def naive_answers(p_slow: float, share: float) -> dict[int, str]:
    """The tempting wrong answers, each with why it is wrong (for the checker's hints)."""
    right = smallest_fanout(hedged_stall_probability(p_slow), share)
    wrong = {
        smallest_fanout(p_slow, share): (
            "that is the fan-out *without* hedging (printed above the exercise); with two copies a sub-request "
            f"stalls with probability p^2 = {p_slow ** 2:g}, not p = {p_slow:g}"),
        math.ceil(share / p_slow ** 2): (
            f"that is the linear approximation k * p^2 >= {share:g}: it counts a request with two stalls twice, so "
            "it underestimates k once the share is large; use 1 - (1 - p^2)^k"),
        smallest_fanout(p_slow, share) // 2 + (smallest_fanout(p_slow, share) % 2): (
            "that treats hedging as doubling the fan-out (2k calls, any stall counts); the first of the two "
            "replies is used, so a sub-request stalls only if *both* copies do"),
        right - 1: "off by one: that fan-out stays just below the share",
        right + 1: "off by one: a smaller fan-out already reaches the share",
    }
    wrong.pop(right, None)
    return wrong


def check_hedged_fanout(answer, *, p_slow: float = 0.01, share: float = 0.5) -> Verdict:
    """Judge ``answer``: the smallest fan-out k at which at least ``share`` of requests meet a
    stall when each sub-request is hedged over two replicas that stall independently with
    probability ``p_slow``."""
    hint = ("a hedged sub-request stalls only when both of its copies do; start from that probability, "
            f"apply the notebook's formula for a share >= {share:g}, and round up to a whole number of backends")
    if answer is None:
        return Verdict.rejected(SUBJECT, "no answer yet (answer is None)", hint=hint)
    if isinstance(answer, bool) or not isinstance(answer, int):
        return Verdict.rejected(
            SUBJECT, f"expected a whole number of backends (an int), got {answer!r} ({type(answer).__name__}): "
                     "a fan-out is a count, so the solution of the equation must be rounded up", hint=hint)
    if answer < 1:
        return Verdict.rejected(SUBJECT, f"expected a fan-out >= 1, got {answer}", hint=hint)
    p_hedged = hedged_stall_probability(p_slow)
    got = slow_share_theory(answer, p_hedged)
    below = slow_share_theory(answer - 1, p_hedged) if answer > 1 else 0.0
    checks = [
        ("reaches the share", got >= share,
         f"with k = {answer}, {got:.4%} of hedged requests meet a stall (needs >= {share:.0%})"),
        ("no smaller fan-out reaches the share", answer == 1 or below < share,
         f"k = {answer - 1} gives {below:.4%}" if answer > 1 else "k = 1 is the smallest fan-out"),
    ]
    why = naive_answers(p_slow, share).get(answer)
    if why:
        checks.append(("not a tempting shortcut", False, why))
    return Verdict.of(SUBJECT, checks, numbers={"answer": answer, "share_at_answer": got, "p_hedged": p_hedged},
                      hint=hint)
