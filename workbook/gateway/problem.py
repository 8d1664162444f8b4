"""Errors as ``application/problem+json`` (RFC 9457): ``type``, ``title``, ``status``,
``detail`` and ``instance``, plus the gateway's ``request_id``."""

from __future__ import annotations

import json

from aiohttp import web

PROBLEM_TYPE_BASE = "https://workbook.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(status: int, title: str, detail: str, *, kind: str, instance: str | None = None, **extra) -> dict:
    body = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status, "detail": detail}
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(status: int, title: str, detail: str, *, kind: str, headers=None, instance: str | None = None,
                     **extra) -> web.Response:
    """A complete problem response (never streamed: it is small)."""
    body = json.dumps(problem_body(status, title, detail, kind=kind, instance=instance, **extra))
    response = web.Response(status=status, text=body, headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response
