"""Errors of the observability package, each naming what was wrong and what was expected."""

from __future__ import annotations

from workbook.core.errors import WorkbookError


class ObservabilityError(WorkbookError, ValueError):
    """Root of the observability package's errors."""


class InvalidNameError(ObservabilityError):
    """A metric or label name that Prometheus rejects (its data model's regular expressions)."""


class PromQLError(ObservabilityError):
    """A PromQL expression that does not parse, or uses what this evaluator does not support.

    ``expr`` is the expression, ``position`` the character offset of the problem.
    """

    def __init__(self, expr: str, position: int, message: str):
        self.expr, self.position = expr, position
        super().__init__(f"PromQL {expr!r} at char {position}: {message}")


class DurationError(ObservabilityError):
    """A duration that is not Prometheus's ``[0-9]+(ms|s|m|h|d|w|y)`` sequence."""


class RuleFileError(ObservabilityError):
    """A rule file (or one rule in it) that Prometheus would refuse to load.

    ``where`` locates it (``groups[0].rules[2].for``), ``expected`` says what was wanted.
    """

    def __init__(self, source: str, where: str, expected: str, got=None):
        self.source, self.where, self.expected, self.got = source, where, expected, got
        text = f"{source}: {where}: expected {expected}"
        if got is not None:
            text += f", got {got!r}"
        super().__init__(text)


class TemplateError(ObservabilityError):
    """An alert label or annotation template this evaluator cannot expand."""
