"""Calling a simulated service like an HTTP client: a non-2xx answer raises ``HTTPStatusError``.

Shared by the virtual-time experiments, so the resilience components see the same
exceptions as with the real aiohttp client (``workbook.transport.client``).
"""

from __future__ import annotations

from workbook.core.simnet import Request, SimNetwork
from workbook.resilience.deadline import deadline_headers
from workbook.resilience.errors import HTTPStatusError, parse_retry_after


async def sim_call(net: SimNetwork, src: str, dst: str, path: str = "/", *, timeout: float | None = None):
    """Send ``GET path`` from ``src`` to ``dst``; return the body or raise ``HTTPStatusError``.

    The current deadline (if any) travels in the request headers, as with the real client.
    """
    response = await net.call(src, dst, Request("GET", path, headers=deadline_headers()), timeout=timeout)
    if not response.ok:
        body = response.body if isinstance(response.body, dict) else {}
        raise HTTPStatusError(response.status, service=dst, operation=f"GET {path}",
                              error=str(body.get("error", "")), message=str(body.get("message", "")),
                              body=response.body, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    return response.body

