"""Chapter 0's exercise: how much fan-out makes a rare stall the common case?"""

from __future__ import annotations

import math

from workbook.labs.ch00_tour.experiments import slow_share_theory


def smallest_fanout(p_slow: float, share: float) -> int:
    """The smallest k with 1 - (1 - p_slow)^k >= share."""
    if not 0 < p_slow < 1 or not 0 < share < 1:
        raise ValueError("p_slow and share must be in (0, 1)")
    k = math.ceil(math.log(1 - share) / math.log(1 - p_slow))
    while k > 1 and slow_share_theory(k - 1, p_slow) >= share:
        k -= 1
    while slow_share_theory(k, p_slow) < share:
        k += 1
    return k


def check_fanout_answer(answer, *, p_slow: float = 0.01, share: float = 0.5) -> bool:
    """Print a verdict on ``answer``: the smallest fan-out at which at least ``share``
    of requests meet a backend that stalls with probability ``p_slow``. Returns True if right."""
    right = smallest_fanout(p_slow, share)
    if answer is None:
        print(f"No answer yet. Hint: P(at least one slow of k) = 1 - (1 - {p_slow})^k; solve for >= {share}.")
        return False
    if isinstance(answer, bool) or not isinstance(answer, int) or answer < 1:
        print(f"Not an answer: expected a whole number of backends >= 1, got {answer!r}.")
        return False
    got = slow_share_theory(answer, p_slow)
    if answer == right:
        print(f"Correct: with k = {answer}, {got:.1%} of requests meet a slow backend "
              f"(k = {answer - 1} gives {slow_share_theory(answer - 1, p_slow):.1%}).")
        return True
    if got < share:
        print(f"Too small: with k = {answer} only {got:.1%} of requests meet a slow backend; you need >= {share:.0%}.")
    else:
        print(f"Too large: k = {answer} gives {got:.1%}, but a smaller fan-out already reaches {share:.0%}.")
    return False
