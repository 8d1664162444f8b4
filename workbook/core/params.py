"""Validation of parameters, so that bad values fail early with a message naming them."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from workbook.core.errors import ParameterError


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int within [minimum, maximum], else raise ParameterError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, value, _range_text("an integer", minimum, maximum))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ParameterError(name, value, _range_text("an integer", minimum, maximum))
    return int(value)


def check_number(
    name: str,
    value,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_exclusive: bool = False,
    max_exclusive: bool = False,
) -> float:
    """Return ``value`` as a float if it is a real number within the bounds."""
    text = _range_text("a number", minimum, maximum, min_exclusive, max_exclusive)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ParameterError(name, value, text)
    low_bad = minimum is not None and (value <= minimum if min_exclusive else value < minimum)
    high_bad = maximum is not None and (value >= maximum if max_exclusive else value > maximum)
    if low_bad or high_bad:
        raise ParameterError(name, value, text)
    return float(value)


def check_choice(name: str, value, choices: Iterable[str]):
    """Return ``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ParameterError(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def _range_text(kind, minimum, maximum, min_exclusive=False, max_exclusive=False):
    if minimum is None and maximum is None:
        return kind
    low = "" if minimum is None else ("(" if min_exclusive else "[") + f"{minimum}"
    high = "" if maximum is None else f"{maximum}" + (")" if max_exclusive else "]")
    if minimum is None:
        return f"{kind} {'<' if max_exclusive else '<='} {maximum}"
    if maximum is None:
        return f"{kind} {'>' if min_exclusive else '>='} {minimum}"
    return f"{kind} in {low}, {high}"
