"""HTTP fields for a rate-limit decision: ``Retry-After`` and the IETF ``RateLimit-Policy``
/ ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-09, structured fields, RFC 9651).

``RateLimit-Policy: "default";q=100;w=60`` advertises the quota (``q`` units per ``w``
seconds); ``RateLimit: "default";r=0;t=17`` the current state (``r`` remaining, ``t``
seconds until the quota resets). Both name the policy, so several can be listed. ``t`` and
``Retry-After`` are whole seconds rounded *up*: a client that waits what it is told is
never refused again for waiting too little.
"""

from __future__ import annotations

import base64
import functools
import math
import re

from workbook.core.errors import ParameterError
from workbook.ratelimit.policy import RateLimitDecision, RateLimitPolicy

_TOKEN = re.compile(r"^[\x20-\x7e]*$")


@functools.lru_cache(maxsize=256)  # a few policy names, formatted on every response
def _sf_string(value: str) -> str:
    if not _TOKEN.match(value):
        raise ParameterError("name", value, "printable ASCII (a structured-field string)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


def _pk(partition_key: str | bytes | None) -> str:
    if partition_key is None:
        return ""
    raw = partition_key.encode() if isinstance(partition_key, str) else bytes(partition_key)
    return ";pk=:" + base64.b64encode(raw).decode("ascii") + ":"


def ratelimit_policy_header(*policies: RateLimitPolicy, partition_key: str | bytes | None = None) -> str:
    """``RateLimit-Policy`` for one or more policies: quota ``q`` = capacity (``limit`` for a
    window, ``burst`` for a bucket), window ``w`` = the time that capacity takes to come
    back (``period`` for a window, ``burst / rate`` for a bucket), in whole seconds, at least
    1. So ``r`` never exceeds ``q`` and ``t`` never exceeds ``w``."""
    if not policies:
        raise ParameterError("policies", policies, "at least one RateLimitPolicy")
    return ", ".join(f"{_sf_string(p.name)};q={p.capacity};w={max(1, _seconds(p.capacity / p.rate))}{_pk(partition_key)}"
                     for p in policies)


def ratelimit_header(policy: RateLimitPolicy, decision: RateLimitDecision, *,
                     partition_key: str | bytes | None = None) -> str:
    """``RateLimit`` for one decision under ``policy``."""
    return (f"{_sf_string(policy.name)};r={max(0, decision.remaining)};t={_seconds(decision.reset_after)}"
            f"{_pk(partition_key)}")


def ratelimit_headers(policy: RateLimitPolicy, decision: RateLimitDecision, *,
                      partition_key: str | bytes | None = None) -> dict[str, str]:
    """The fields a response carries: ``RateLimit-Policy`` and ``RateLimit`` always, and
    ``Retry-After`` (RFC 9110 section 10.2.3, delay-seconds) when the request was refused.
    The gateway answers a refused request with ``429 Too Many Requests`` and these."""
    headers = {
        "RateLimit-Policy": ratelimit_policy_header(policy, partition_key=partition_key),
        "RateLimit": ratelimit_header(policy, decision, partition_key=partition_key),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, _seconds(decision.retry_after)))
    return headers
