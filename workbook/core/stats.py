"""Summary statistics the chapters share: one quantile definition for every table and figure.

Monitoring systems and load testers report *nearest-rank* quantiles of what they saw (the
smallest observed value with at least a share ``q`` of observations at or below it), so
the workbook does too: a reported p99 is always a latency some request really had.
Prometheus's ``histogram_quantile`` interpolates inside a bucket instead; chapter 8
compares the two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from workbook.core.errors import ParameterError
from workbook.core.params import check_number


def _sorted(values: Iterable[float]) -> list[float]:
    ordered = sorted(values)
    if any(v != v for v in ordered):  # NaN breaks sorting silently: refuse it
        raise ParameterError("values", "a sequence containing NaN", "numbers without NaN (drop or count them first)")
    return ordered


def quantile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q``-quantile of ``values`` (any order); NaN when there are none.

    ``q`` is a share in [0, 1]: ``quantile(xs, 0.5)`` is the median, ``0.99`` the p99.
    ``q = 0`` gives the minimum and ``q = 1`` the maximum. Infinite values sort as usual
    (a timed-out request counted as ``inf`` makes the top quantiles infinite).
    """
    return quantiles(values, (q,))[0]


def quantiles(values: Iterable[float], qs: Sequence[float]) -> list[float]:
    """Several nearest-rank quantiles of ``values``, sorting them once."""
    qs = [check_number(f"q[{i}]", q, minimum=0, maximum=1) for i, q in enumerate(qs)]
    ordered = _sorted(values)
    if not ordered:
        return [math.nan] * len(qs)
    n = len(ordered)
    return [ordered[min(n, max(1, math.ceil(q * n))) - 1] for q in qs]
