"""Route matching with a documented precedence, and the source article's matcher beside it.

Precedence (``Router.match``), like nginx's ``location`` with ``=`` and ``^~``:

1. **exact** routes: the normalised path equals the route's path;
2. else the **longest prefix** on whole path segments: ``/api/users`` matches
   ``/api/users``, ``/api/users/`` and ``/api/users/42``, never ``/api/usersettings``;
3. else **regex** routes, in configuration order, the first whose pattern matches the
   whole path (``re.fullmatch``).

Why not Envoy's first match in configuration order: with hundreds of routes written by
several teams, a route added high in the file silently shadows the ones below it; here a
more specific exact or prefix route always wins wherever it is written, and only regex
routes (which cannot be ordered by specificity) depend on order. Among routes with the
same path, the method and host decide: a route lists ``methods`` (empty: any) and an
optional ``host`` (routes of another host are not candidates); when the most specific
path's routes do not allow the method the answer is 405 with ``Allow``, never a fall
through to a less specific route; a path that matches nothing is a 404. Matching runs on the output of ``normalize_path``.

``naive_find_route`` reproduces the article's ``_find_route``: exact ``METHOD:path`` key,
then ``path.startswith(route_path)`` in insertion order, on the raw path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from workbook.core.errors import ParameterError

MATCH_KINDS = ("exact", "prefix", "regex")


@dataclass(frozen=True)
class RouteRule:
    """What the router needs of a route: ``name``, ``path``, ``match``, ``methods``, ``host``."""

    name: str
    path: str
    match: str = "prefix"
    methods: tuple[str, ...] = ()
    host: str | None = None
    target: object = field(default=None, compare=False, repr=False)
    """Whatever the caller wants back (the route's settings)."""

    def allows(self, method: str, host: str | None) -> bool:
        if self.methods and method not in self.methods and not (method == "HEAD" and "GET" in self.methods):
            return False
        return self.host is None or _host(host) == self.host.lower()


@dataclass(frozen=True)
class RouteMatch:
    """``rule`` (None when nothing matched) and ``allowed``: the methods of the routes whose
    path matched (for 405's ``Allow``), empty when no path matched (404)."""

    rule: RouteRule | None
    allowed: tuple[str, ...] = ()


def segment_prefix(prefix: str, path: str) -> bool:
    """``path`` is ``prefix`` or lies under it on a segment boundary."""
    if prefix == "/" or path == prefix:
        return True
    base = prefix.rstrip("/")
    return path.startswith(base + "/")


class Router:
    def __init__(self, rules: Iterable[RouteRule]):
        self.rules = list(rules)
        self._exact: dict[str, list[RouteRule]] = {}
        self._prefix: list[RouteRule] = []
        self._regex: list[tuple[re.Pattern, RouteRule]] = []
        for r in self.rules:
            if r.match == "exact":
                self._exact.setdefault(r.path, []).append(r)
            elif r.match == "prefix":
                self._prefix.append(r)
            elif r.match == "regex":
                self._regex.append((re.compile(r.path), r))
            else:
                raise ParameterError(f"route {r.name!r}.match", r.match, f"one of {MATCH_KINDS}")
        # longest prefix first; equal lengths keep configuration order (stable sort)
        self._prefix.sort(key=lambda r: -len(r.path.rstrip("/")))

    def candidates(self, path: str) -> list[RouteRule]:
        """Every rule whose path matches, most specific first (the precedence order)."""
        found = list(self._exact.get(path, ()))
        found += [r for r in self._prefix if segment_prefix(r.path, path)]
        found += [r for pattern, r in self._regex if pattern.fullmatch(path)]
        return found

    def match(self, method: str, path: str, host: str | None = None) -> RouteMatch:
        """The route for ``method path`` (normalised) at ``host``.

        Rules for another host are not candidates. The most specific matching path (the
        first candidate's ``(match, path)``) decides alone: if none of its rules allows the
        method, the answer is 405, never a less specific route (which might not require
        the same authentication).
        """
        cands = [r for r in self.candidates(path) if r.host is None or _host(host) == r.host.lower()]
        if not cands:
            return RouteMatch(None)
        best = (cands[0].match, cands[0].path)
        group = [r for r in cands if (r.match, r.path) == best]
        for rule in group:
            if rule.allows(method, host):
                return RouteMatch(rule)
        return RouteMatch(None, tuple(sorted({m for r in group for m in r.methods})))


def _host(host: str | None) -> str:
    return (host or "").split(":")[0].lower()


def naive_find_route(routes: list[dict], method: str, path: str) -> dict | None:
    """The source article's ``_find_route``: exact ``"METHOD:path"``, then ``startswith``."""
    table = {f"{r['method']}:{r['path']}": r for r in routes}
    if f"{method}:{path}" in table:
        return table[f"{method}:{path}"]
    for key, route in table.items():
        route_method, route_path = key.split(":", 1)
        if method == route_method and path.startswith(route_path):
            return route
    return None
