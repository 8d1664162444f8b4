"""The gateway's own errors, all under ``WorkbookError``; each maps to one HTTP status."""

from __future__ import annotations

from workbook.core.errors import ConfigError, WorkbookError


class GatewayError(WorkbookError):
    """Base class of the gateway's request-time refusals; ``status`` is the HTTP answer."""

    status = 500
    title = "Gateway error"
    kind = "gateway-error"

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(detail)


class PathRejected(GatewayError):
    """A request target the gateway will not interpret (bad percent-encoding, an encoded
    slash, a NUL, a backslash, not origin-form): 400, never forwarded."""

    status = 400
    title = "Bad request target"
    kind = "bad-request-target"


class BodyTooLarge(GatewayError):
    status = 413
    title = "Content too large"
    kind = "body-too-large"


class IncompleteBody(GatewayError):
    """The client's body ended early or broke while streaming: the client's fault (400),
    never recorded as an upstream failure by the breaker."""

    status = 400
    title = "Incomplete request body"
    kind = "incomplete-body"


class UpstreamUnavailable(GatewayError):
    """Refused, reset or closed by the upstream: 502."""

    status = 502
    title = "Bad gateway"
    kind = "upstream-unavailable"

    def __init__(self, detail: str, *, connect: bool = False, retryable: bool = False):
        self.connect, self.retryable = connect, retryable
        super().__init__(detail)


class UpstreamTimeout(GatewayError):
    status = 504
    title = "Gateway timeout"
    kind = "upstream-timeout"


class GatewayConfigError(ConfigError):
    """A gateway configuration with one or more problems, each ``(element, message)``:
    the file, the element (``routes[1] 'orders'.timeout_seconds``) and what is wrong."""

    def __init__(self, source, problems: list[tuple[str, str]]):
        problems = list(problems) or [("<config>", "invalid")]
        first_element, first_message = problems[0]
        super().__init__(source, first_element, first_message)
        self.problems = problems
        lines = [f"{self.source}: {len(problems)} problem(s)"] + [f"  {el}: {msg}" for el, msg in problems]
        self.args = ("\n".join(lines),)

    def __str__(self):
        return self.args[0]


class UpstreamStatus(GatewayError):
    """The upstream answered an error status worth retrying (502, 503, 504 by default):
    the attempt fails so the retry loop can try again; ``retryable`` says whether it may."""

    title = "Upstream error"
    kind = "upstream-error"

    def __init__(self, status: int, *, retryable: bool):
        self.status, self.retryable = status, retryable
        super().__init__(f"upstream answered HTTP {status}")
