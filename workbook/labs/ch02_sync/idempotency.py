"""A retried POST, with and without an ``Idempotency-Key``, against the real demo service.

The demo service commits an order and then answers slowly (its ``delayed_replies``
fault): the caller's per-try timeout fires although the order exists. What happens next
depends on the caller's retry rule:

* ``"naive"``: retry every timeout, as the source article did for every method: the
  retry places a second order (a duplicate charge, a second parcel);
* ``"safe"``: the library's rule (``workbook.transport.client``): a POST is not
  idempotent (RFC 9110, section 9.2.2), so a timed-out POST is not retried: no duplicate,
  but the caller gets an error and does not know whether the order exists;
* ``"keyed"``: the POST carries an ``Idempotency-Key`` (one key per logical operation,
  reused by every retry of it); the server stores the key with the order in one
  transaction and answers a repeat with the stored response. Retrying is now safe: one
  order, and the caller gets its answer.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import aiohttp

from workbook.core.params import check_choice, check_number
from workbook.resilience import Backoff, Retry, is_retryable
from workbook.transport.client import ServiceTimeoutError
from workbook.transport.demo_service import IDEMPOTENCY_HEADER, REPLAYED_HEADER

MODES = ("naive", "safe", "keyed")


@dataclass
class OrderAttempts:
    mode: str
    attempts: int
    outcome: str  # what the caller saw
    orders_placed: int  # what the server did
    replayed: bool


async def place_order_with_retries(session: aiohttp.ClientSession, base_url: str, mode: str, *,
                                   per_try_timeout: float = 0.5, reply_delay: float = 1.5,
                                   attempts: int = 3, key: str | None = None) -> OrderAttempts:
    """Make the next order's reply slow, place one order the ``mode`` way, count what happened."""
    check_choice("mode", mode, MODES)
    check_number("per_try_timeout", per_try_timeout, minimum=0, min_exclusive=True)
    check_number("reply_delay", reply_delay, minimum=per_try_timeout, min_exclusive=True)
    base_url = base_url.rstrip("/")
    async with session.post(f"{base_url}/admin/faults", json={"delayed_replies": 1, "reply_delay": reply_delay}) as r:
        r.raise_for_status()
    before = await _order_count(session, base_url)
    if mode == "keyed":
        key = key or str(uuid.uuid4())  # one key for the operation, reused by every retry
    tries = [0]
    replayed = [False]

    async def post_once():
        tries[0] += 1
        headers = {IDEMPOTENCY_HEADER: key} if mode == "keyed" else {}
        try:
            async with asyncio.timeout(per_try_timeout):
                async with session.post(f"{base_url}/orders", json={"sku": "apple", "quantity": 1},
                                        headers=headers) as resp:
                    body = await resp.json()
                    replayed[0] = resp.headers.get(REPLAYED_HEADER) == "true"
                    return resp.status, body
        except TimeoutError as exc:
            # the work may have been done: only a keyed (idempotent) request may be sent again
            raise ServiceTimeoutError(f"POST /orders: no answer within {per_try_timeout:g} s",
                                      retryable=mode == "keyed") from exc

    retry_on = (lambda exc: isinstance(exc, TimeoutError)) if mode == "naive" else is_retryable
    retry = Retry(attempts, Backoff(0.05, 2.0, 0.2, "none"), retry_on=retry_on)
    try:
        status, body = await retry.call_async(post_once)
        outcome = f"HTTP {status}, order {body['order_id']}"
    except ServiceTimeoutError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    await asyncio.sleep(reply_delay)  # let the slow reply finish on the server
    placed = await _order_count(session, base_url) - before
    return OrderAttempts(mode, tries[0], outcome, placed, replayed[0])


async def _order_count(session, base_url) -> int:
    async with session.get(f"{base_url}/orders") as resp:
        return len(await resp.json())
