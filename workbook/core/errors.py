"""Errors for bad input: each names where the problem is and what was expected."""


class WorkbookError(Exception):
    """Base class of the workbook's own errors."""


class ConfigError(WorkbookError, ValueError):
    """A configuration or data file is malformed.

    ``source`` is the file (or other origin), ``element`` the offending item inside it
    (a node name, ``edges[3]``...), ``expected`` what would have been accepted.
    """

    def __init__(self, source, element, expected, got=None):
        self.source, self.element, self.expected, self.got = str(source), element, expected, got
        detail = f"{self.source}: {element}: expected {expected}"
        if got is not None:
            detail += f", got {got!r}"
        super().__init__(detail)


class ParameterError(WorkbookError, ValueError):
    """A parameter (a notebook's, a function's) has a value outside what is allowed."""

    def __init__(self, name, value, allowed):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"parameter {name!r} = {value!r} is not allowed: expected {allowed}")
