"""The request context that travels with every call: correlation id, user, tenant.

A server reads it from the incoming headers (``RequestContext.from_headers``) and makes it
current (``context_scope``) while it handles the request, so the service client adds the
same headers to every downstream call without the handler passing them along by hand.
"""

from __future__ import annotations

import contextvars
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

CORRELATION_HEADER = "X-Correlation-ID"
USER_HEADER = "X-User-ID"
TENANT_HEADER = "X-Tenant-ID"

_current: contextvars.ContextVar["RequestContext | None"] = contextvars.ContextVar("workbook_request", default=None)


@dataclass(frozen=True)
class RequestContext:
    correlation_id: str
    user_id: str | None = None
    tenant_id: str | None = None

    @classmethod
    def new(cls, user_id: str | None = None, tenant_id: str | None = None) -> "RequestContext":
        return cls(str(uuid.uuid4()), user_id, tenant_id)

    @classmethod
    def from_headers(cls, headers) -> "RequestContext":
        """The caller's context; a fresh correlation id if the caller sent none."""
        return cls(headers.get(CORRELATION_HEADER) or str(uuid.uuid4()), headers.get(USER_HEADER),
                   headers.get(TENANT_HEADER))

    def headers(self) -> dict[str, str]:
        out = {CORRELATION_HEADER: self.correlation_id}
        if self.user_id is not None:
            out[USER_HEADER] = self.user_id
        if self.tenant_id is not None:
            out[TENANT_HEADER] = self.tenant_id
        return out


def current_context() -> RequestContext | None:
    return _current.get()


@contextmanager
def context_scope(context: RequestContext | None):
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
