"""Chapter 6's exercise: write the route table so that every request reaches the intended route.

The gateway's precedence (``workbook.gateway.routing``): exact routes, then the longest
prefix on whole segments, then regex routes in configuration order; matching runs on the
normalised path; when the most specific path's routes do not allow the method the answer
is 405. The exercise: a route table (a list of dicts ``{"name", "path", "match",
"methods"}``) such that each request of ``REQUESTS`` gets exactly its intended outcome (a
route name, ``"404"`` or ``"405"``; a refused path would be ``"400"``).

``check_route_table(answer)`` returns a ``Verdict``: the table must be well formed (known
fields, a known ``match``, paths normalised, regexes that compile, known methods) and
decide every request as intended; the hint names the first request decided wrongly and
why. ``naive_answers()`` holds the tempting wrong tables (prefix everywhere, a regex that
behaves like ``startswith``, regex routes in the wrong order, any method on orders, no
exact route for ``/api/users/me``, no admin route), each rejected by the checker.
"""

from __future__ import annotations

import re

from workbook.core.verdict import Verdict
from workbook.gateway import HTTP_METHODS, MATCH_KINDS, PathRejected, Router, RouteRule, normalize_path

SUBJECT = "a route table that sends each request to its intended route"

REQUESTS: list[tuple[str, str, str]] = [
    ("GET", "/api/users", "users"),
    ("GET", "/api/users/42", "users"),
    ("GET", "/api/users/me", "profile"),
    ("GET", "/api/users/42/orders", "user-orders"),
    ("GET", "/api/usersettings", "404"),
    ("POST", "/api/orders", "orders"),
    ("GET", "/api/orders", "405"),
    ("GET", "/api/public/docs", "public"),
    ("GET", "/api/public/../admin/keys", "admin"),
    ("GET", "/api/public/%2e%2e/admin/keys", "admin"),
    ("DELETE", "/api/admin/keys", "405"),
    ("GET", "/health", "404"),
]
"""(method, raw path, intended outcome): the table the answer is judged on."""

FIELDS = ("name", "path", "match", "methods")


def decide(router: Router, method: str, raw: str) -> tuple[str, str]:
    """``(outcome, why)`` for one request: a route name, "400", "404" or "405"."""
    try:
        path = normalize_path(raw)
    except PathRejected as exc:
        return "400", f"path refused: {exc.detail}"
    found = router.match(method, path)
    cands = router.candidates(path)
    if found.rule is not None:
        rule = found.rule
        how = {"exact": "exact match", "prefix": "longest whole-segment prefix",
               "regex": "first regex in order"}[rule.match]
        return rule.name, f"{path}: {how} {rule.path!r}"
    if found.allowed:
        return "405", f"{path}: most specific route(s) {cands[0].name!r} allow only {', '.join(found.allowed)}"
    return "404", f"{path}: no route matches"


def _rules(answer) -> list[RouteRule]:
    if not isinstance(answer, (list, tuple)) or not answer:
        raise TypeError(f"expected a non-empty list of route dicts, got {type(answer).__name__}")
    rules, names = [], set()
    for i, r in enumerate(answer):
        where = f"route[{i}]"
        if not isinstance(r, dict):
            raise TypeError(f"{where}: expected a dict with {FIELDS}, got {type(r).__name__}")
        unknown = sorted(set(r) - set(FIELDS))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}: expected some of {FIELDS}")
        for key in ("name", "path"):
            if not isinstance(r.get(key), str) or not r.get(key):
                raise ValueError(f"{where}.{key}: required, a non-empty string")
        where = f"route[{i}] {r['name']!r}"
        if r["name"] in names:
            raise ValueError(f"{where}.name: another route has this name")
        names.add(r["name"])
        match = r.get("match", "prefix")
        if match not in MATCH_KINDS:
            raise ValueError(f"{where}.match: {match!r}, expected one of {MATCH_KINDS}")
        methods = r.get("methods", [])
        if isinstance(methods, str) or not all(m in HTTP_METHODS for m in methods):
            raise ValueError(f"{where}.methods: {methods!r}, expected a list of {', '.join(HTTP_METHODS)}")
        if match == "regex":
            try:
                re.compile(r["path"])
            except re.error as exc:
                raise ValueError(f"{where}.path: invalid regular expression: {exc}") from None
        else:
            try:
                normal = normalize_path(r["path"])
            except PathRejected as exc:
                raise ValueError(f"{where}.path: {exc.detail}") from None
            if normal != r["path"]:
                raise ValueError(f"{where}.path: not normalised, it would never match: write {normal!r}")
        rules.append(RouteRule(r["name"], r["path"], match, tuple(methods)))
    return rules


def check_route_table(answer) -> Verdict:
    """Judge a route table (see the module docstring)."""
    try:
        router = Router(_rules(answer))
    except (TypeError, ValueError) as exc:
        return Verdict.rejected(SUBJECT, str(exc), hint="a list of {'name', 'path', 'match', 'methods'} dicts")
    checks, wrong = [], []
    for method, raw, intended in REQUESTS:
        got, why = decide(router, method, raw)
        ok = got == intended
        checks.append((f"{method} {raw} -> {intended}", ok, "" if ok else f"got {got} ({why})"))
        if not ok:
            wrong.append((method, raw, intended, got, why))
    hint = ""
    if wrong:
        method, raw, intended, got, why = wrong[0]
        hint = (f"{method} {raw} went to {got} instead of {intended} ({why}). Remember: an exact route beats a "
                "prefix, a prefix beats every regex, regexes are tried in order and must match the whole path, "
                "and a route's methods decide between 405 and a route")
    return Verdict.of(SUBJECT, checks, numbers={"requests": len(REQUESTS), "wrong": len(wrong)}, hint=hint)


def _table(users, profile=True, user_orders=("regex", r"/api/users/[0-9]+/orders"), order_methods=("POST",),
           admin=True, first=()) -> list[dict]:
    table = list(first) + [users]
    if profile:
        table.append({"name": "profile", "path": "/api/users/me", "match": "exact", "methods": ["GET"]})
    if user_orders:
        table.append({"name": "user-orders", "path": user_orders[1], "match": user_orders[0], "methods": ["GET"]})
    table.append({"name": "orders", "path": "/api/orders", "match": "prefix", "methods": list(order_methods)})
    table.append({"name": "public", "path": "/api/public", "match": "prefix", "methods": ["GET"]})
    if admin:
        table.append({"name": "admin", "path": "/api/admin", "match": "prefix", "methods": ["GET"]})
    return table


_USERS_REGEX = {"name": "users", "path": r"/api/users(/[0-9]+)?", "match": "regex", "methods": ["GET"]}


def model_answer() -> list[dict]:
    """One right answer (not shown in the notebook above the exercise)."""
    return _table(_USERS_REGEX)


def naive_answers() -> dict[str, list[dict]]:
    """The tempting wrong tables, by name: each is rejected by ``check_route_table``."""
    users_prefix = {"name": "users", "path": "/api/users", "match": "prefix", "methods": ["GET"]}
    return {
        "prefix everywhere (users as a prefix beats the user-orders regex)": _table(users_prefix),
        "a regex that behaves like startswith ('/api/users.*')":
            _table({**_USERS_REGEX, "path": "/api/users.*"}),
        "regex routes in the wrong order (a broad users regex first)":
            _table({**_USERS_REGEX, "path": "/api/users(/.*)?"}),
        "orders for any method (GET should be 405)": _table(_USERS_REGEX, order_methods=()),
        "no exact route for /api/users/me": _table(_USERS_REGEX, profile=False),
        "no admin route (the dot segments are left to chance)": _table(_USERS_REGEX, admin=False),
    }


def starting_table() -> list[dict]:
    """The notebook's pre-filled table: the article's routes made segment-aware, nothing else."""
    return [{"name": "users", "path": "/api/users", "match": "prefix", "methods": ["GET"]},
            {"name": "orders", "path": "/api/orders", "match": "prefix", "methods": ["POST"]}]


__all__ = ["REQUESTS", "check_route_table", "decide", "model_answer", "naive_answers", "starting_table"]
