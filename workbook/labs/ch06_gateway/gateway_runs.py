"""Chapter 6's gateway experiments, each returning plain data (lists of dicts) for the notebook.

* ``article_config_report()``: the article's sample configuration audited, and what the
  schema says of it; ``corrected_config_summary()``: the corrected one, loaded.
* ``route_decision(path, method)`` / ``decision_text(d)``: one path through both matchers,
  with the reason (the route-matcher tester's answer);
* ``route_matcher_rows(paths)``: each path through the article's ``startswith`` matcher and
  through ours (after normalisation): the route-matcher tester's table.
* ``normalisation_rows(paths)``: raw path -> normalised path, or why it is refused.
* ``await jwt_playground(now)``: every forgery and its verdict; ``await
  default_secret_forgery()``: the article's default secret forged in one line, accepted by
  its check, refused by ours. (Coroutines: ``await`` them in a cell.)
* ``live_tour(stack=None)``: a scripted session against the live gateway on 127.0.0.1 (two demo
  inventory instances, the echo upstream): status, route, instance, limiter decision and
  error of each request, from the access log (only deterministic fields).
* ``await error_rows(stack)``: a 502, a 504 and a 413 as problem+json; ``await
  bounded_fuzz(stack, n, seed)``: ``n`` seeded odd requests as raw bytes, status counts;
* ``least_connections_rows()``: requests in flight per instance under the article's
  "least connections" (always the first) and the workbook's;
* ``header_rows()``: what the upstream received and what the client got back, for one
  request carrying hop-by-hop and forwarding headers.
* ``streaming_memory(size_mb)``: an upload and a download through the gateway with the
  process's peak RSS growth (wall-clock numbers: print them rounded, or ignore the cell).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path

import aiohttp
from multidict import CIMultiDict

from workbook.auth import (
    JWTVerifier,
    KeySet,
    SigningKey,
    TokenRejected,
    VerifierConfig,
    forge_with_default_secret,
    forgeries,
    naive_verify,
    run_attacks,
)
from workbook.balancing import Backend, NaiveLeastConnections, make_balancer
from workbook.core.seeds import stream
from workbook.gateway import (
    PathRejected,
    Router,
    RouteRule,
    audit_article_config,
    load_config,
    naive_find_route,
    normalize_path,
)
from workbook.gateway.demo import DEMO_AUDIENCE, DEMO_ISSUER, DemoStack

DATA = Path(__file__).resolve().parents[3] / "data" / "gateway"
PLAYGROUND_NOW = 1_800_000_000
"""The fixed "now" of the JWT playground (2027-01-15), so verdicts never depend on the day."""

MATCHER_ROUTES = [("users", "/api/users", "prefix", "GET", True), ("orders", "/api/orders", "prefix", "POST", True),
                  ("public", "/api/public", "prefix", "GET", False), ("admin", "/api/admin", "prefix", "GET", True)]
MATCHER_PATHS = ["/api/users", "/api/users/42", "/api/usersettings", "/api/users-internal/keys", "/api/orders",
                 "/api/public/docs", "/api/public/../admin/keys", "/api/public/%2e%2e/admin/keys",
                 "/api//public/..//admin/keys", "/api/public/a%2Fb", "/api/admin"]


def _data_path(name: str) -> Path:
    path = DATA / name
    if not path.exists():  # installed wheel: data/ is packaged as workbook/data/
        path = Path(__file__).resolve().parents[2] / "data" / "gateway" / name
    return path


def article_config_report() -> dict:
    raw, findings, error = audit_article_config(_data_path("article_gateway.yaml"))
    return {"routes": len(raw.get("routes", [])), "findings": [vars(f) for f in findings],
            "schema_problems": [] if error is None else [{"element": e, "problem": m} for e, m in error.problems]}


def corrected_config_summary() -> list[dict]:
    cfg = load_config(_data_path("gateway.yaml"))
    rows = []
    for r in cfg.routes:
        limiter = cfg.rate_limiters.get(r.rate_limit) if r.rate_limit else None
        rows.append({"route": r.name, "path": r.path, "match": r.match, "methods": ",".join(r.methods) or "*",
                     "upstream": r.upstream, "balancer": cfg.services[r.upstream].balancer,
                     "instances": len(cfg.services[r.upstream].instances), "timeout_s": r.timeout_seconds,
                     "attempts": r.retries.attempts, "scopes": ",".join(r.auth.scopes),
                     "limit": None if limiter is None else f"{limiter.algorithm} {limiter.limit}/"
                                                           f"{limiter.period_seconds:g}s"})
    return rows


def route_matcher_rows(paths=None, method: str = "GET") -> list[dict]:
    """Each path: the article's route (raw path, ``startswith``) and ours (normalised)."""
    article = [{"name": n, "path": p, "method": m} for n, p, _, m, _ in MATCHER_ROUTES]
    router = Router(RouteRule(n, p, k, (m,), target=auth) for n, p, k, m, auth in MATCHER_ROUTES)
    rows = []
    for raw in paths or MATCHER_PATHS:
        naive = naive_find_route(article, method, raw)
        try:
            path = normalize_path(raw)
            found = router.match(method, path)
            ours = found.rule.name if found.rule else ("405" if found.allowed else "404")
            auth = found.rule.target if found.rule else None
        except PathRejected as exc:
            path, ours, auth = f"refused: {exc}", "400", None
        rows.append({"path": raw, "article_route": naive["name"] if naive else "404",
                     "normalised": path, "route": ours, "auth_required": auth})
    return rows


def normalisation_rows(paths=None) -> list[dict]:
    rows = []
    for raw in paths or ["/a/./b/../c", "/a//b///c", "/%7Euser/%41bc", "/api/public/%2e%2e/admin", "/a%20b%3f",
                         "/x/%252e%252e/y", "/../../etc/passwd", "/a%2Fb", "/a%5Cb", "/a%00", "/a%zz"]:
        try:
            rows.append({"raw": raw, "normalised": normalize_path(raw), "refused": None})
        except PathRejected as exc:
            rows.append({"raw": raw, "normalised": None, "refused": exc.detail})
    return rows


async def jwt_playground(now: float = PLAYGROUND_NOW, *, algorithms=("RS256", "ES256")) -> list[dict]:
    """Every forgery against a verifier trusting one RS256 key; one row per token."""
    issuer_key = SigningKey.generate("RS256", "shop-2027-01")
    verifier = JWTVerifier(VerifierConfig(issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE, algorithms=tuple(algorithms)),
                           KeySet([issuer_key]), now=lambda: now)
    return [_row(r) for r in await run_attacks(verifier, forgeries(issuer_key, issuer=DEMO_ISSUER,
                                                                   audience=DEMO_AUDIENCE, now=now))]


def _row(r) -> dict:
    return {"attack": r.name, "description": r.description, "accepted": r.accepted, "reason": r.reason,
            "as_expected": r.as_expected, "token_bytes": r.token_bytes}


async def default_secret_forgery() -> dict:
    """The one line, what the article's gateway says, and what ours says."""
    claims = {"sub": "admin", "scope": "orders:write admin", "exp": PLAYGROUND_NOW + 3600}
    token = forge_with_default_secret(claims)
    try:
        article = naive_verify(token, {}) == claims  # exp is in the future for years yet
    except Exception as exc:  # noqa: BLE001 - shown, not raised
        article = f"{type(exc).__name__}: {exc}"
    verifier = JWTVerifier(VerifierConfig(issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE),
                           KeySet([SigningKey.generate("ES256", "k")]), now=lambda: PLAYGROUND_NOW)
    try:
        await verifier.verify(token)
        ours = "accepted"
    except TokenRejected as exc:
        ours = f"refused ({exc.reason})"
    return {"line": 'jwt.encode({"sub": "admin", ...}, "secret", algorithm="HS256")', "token": token,
            "article_accepts": article, "ours": ours}


TOUR = [
    ("GET", "/api/stock/apple", ("stock:read",)),
    ("GET", "/api/stock/plum", ("stock:read",)),
    ("GET", "/api/stock/fig", ("stock:read",)),
    ("GET", "/api/stock/apple", None),
    ("GET", "/api/stock/apple", ("orders:write",)),
    ("GET", "/api/public/../admin/keys", ("stock:read",)),
    ("GET", "/api/public/%2e%2e/admin/keys", ("admin",)),
    ("GET", "/api/usersettings", ("stock:read",)),
    ("DELETE", "/api/stock/apple", ("stock:read",)),
    ("POST", "/api/orders", ("orders:write",)),
    ("GET", "/api/dead/anything", None),
    ("GET", "/slow/sleep?seconds=2", None),
    ("GET", "/echo/reset", None),
    ("GET", "/echo/a%2Fb", None),
] + [("GET", "/api/limited/x", None)] * 7


async def live_tour(stack: DemoStack | None = None) -> list[dict]:
    """The scripted session; one row per request, from the gateway's access log. With a
    running ``stack`` (the notebook's) it is used and left running; else one is started."""
    own = stack is None
    stack = stack or await DemoStack.start()
    try:
        before = len(stack.gateway.access_log.records())
        async with aiohttp.ClientSession() as client:
            for method, path, scopes in TOUR:
                headers = stack.bearer(scopes) if scopes else {}
                kwargs = {"json": {"sku": "apple", "quantity": 1}} if method == "POST" else {}
                async with client.request(method, stack.gateway_url + path, headers=headers, **kwargs) as r:
                    await r.read()
        records = stack.gateway.access_log.records()[before:]
    finally:
        if own:
            await stack.stop()
    return [{"request": f"{m} {p}", "token": "none" if s is None else " ".join(s), "status": rec["status"],
             "route": rec["route"], "instance": rec["instance"], "limiter": rec["limiter"],
             "attempts": rec["attempts"], "error": rec["error"]}
            for (m, p, s), rec in zip(TOUR, records)]


async def header_rows(stack: DemoStack | None = None) -> dict:
    """One request with hop-by-hop and forwarding headers; what crossed the gateway (on
    ``stack`` if given, left running; else on a stack of its own)."""
    sent = {"Connection": "X-Private, keep-alive", "X-Private": "must not cross", "Keep-Alive": "timeout=9",
            "TE": "trailers", "Proxy-Authorization": "Basic Zm9v", "Upgrade": "websocket",
            "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.7",
            "X-Request-Id": "tour-1", "X-Custom": "kept"}
    own = stack is None
    stack = stack or await DemoStack.start()
    try:
        async with aiohttp.ClientSession() as client, \
                client.get(stack.gateway_url + "/echo/headers", headers=sent) as r:
            echoed = json.loads(await r.read())
            back = CIMultiDict(r.headers)
    finally:
        if own:
            await stack.stop()
    upstream = CIMultiDict(echoed["headers"])
    hidden = {"host", "date", "content-length", "user-agent", "accept", "accept-encoding"}
    request_rows = [{"header": k, "client_sent": v, "upstream_got": _port_free(upstream.get(k))}
                    for k, v in sent.items()]
    request_rows += [{"header": k, "client_sent": None, "upstream_got": _port_free(v)} for k, v in upstream.items()
                     if k not in sent and k.lower() not in hidden]
    upstream_sent = ["Connection", "X-Upstream-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade",
                     "X-End-To-End", "Set-Cookie", "X-Request-Id"]
    response_rows = [{"header": k, "client_got": back.get(k)} for k in upstream_sent]
    return {"request": request_rows, "response": response_rows}


def _port_free(value):
    """Ports and the remaining milliseconds change from run to run: shown as placeholders."""
    if value is None:
        return None
    value = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", value)
    return "<ms left of 30000>" if value.isdigit() else value


async def streaming_memory(size_mb: int = 200) -> dict:
    """Upload and download ``size_mb`` through the gateway; peak RSS growth in MB (Linux)."""
    proc = Path("/proc/self/status")

    def status_kb(field):
        for line in proc.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def reset():
        Path("/proc/self/clear_refs").write_text("5")

    size = size_mb * 1024 * 1024
    block = b"z" * (256 * 1024)

    async def body():
        for _ in range(size // len(block)):
            yield block

    stack = await DemoStack.start()
    try:
        async with aiohttp.ClientSession() as client:
            reset()
            base, t0 = status_kb("VmRSS"), time.perf_counter()
            async with client.post(stack.gateway_url + "/echo/sink", data=body(),
                                   headers={"Content-Length": str(size)}) as r:
                got = (await r.json())["bytes"]
            up = {"seconds": time.perf_counter() - t0, "rss_growth_mb": (status_kb("VmHWM") - base) / 1024,
                  "bytes": got}
            reset()
            base, t0, n = status_kb("VmRSS"), time.perf_counter(), 0
            async with client.get(stack.gateway_url + f"/echo/source?bytes={size}") as r:
                async for chunk in r.content.iter_chunked(256 * 1024):
                    n += len(chunk)
            down = {"seconds": time.perf_counter() - t0, "rss_growth_mb": (status_kb("VmHWM") - base) / 1024,
                    "bytes": n}
    finally:
        await stack.stop()
    return {"size_mb": size_mb, "upload": up, "download": down}


def route_decision(path: str, method: str = "GET") -> dict:
    """One path through both matchers with the reason (the route-matcher tester's answer)."""
    article = [{"name": n, "path": p, "method": m} for n, p, _, m, _ in MATCHER_ROUTES]
    naive = naive_find_route(article, method, path)
    why_article = (f"{path!r}.startswith({naive['path']!r}) on the raw path" if naive else
                   "no route starts the raw path")
    router = Router(RouteRule(n, p, k, (m,), target=auth) for n, p, k, m, auth in MATCHER_ROUTES)
    try:
        normal = normalize_path(path)
    except PathRejected as exc:
        return {"path": path, "article": naive["name"] if naive else "404", "article_why": why_article,
                "normalised": None, "route": "400", "why": f"refused before routing: {exc.detail}", "auth": None}
    found = router.match(method, normal)
    if found.rule is not None:
        route, why, auth = found.rule.name, f"longest whole-segment prefix {found.rule.path!r}", found.rule.target
    elif found.allowed:
        route, why, auth = "405", f"the most specific route allows only {', '.join(found.allowed)}", None
    else:
        route, why, auth = "404", "no route's prefix ends on a segment boundary of this path", None
    return {"path": path, "article": naive["name"] if naive else "404", "article_why": why_article,
            "normalised": normal, "route": route, "why": why, "auth": auth}


def decision_text(d: dict) -> str:
    """One line for the tester: ours (and why), then the article's."""
    ours = f"{d['route']}" + ("" if d["auth"] is None else (" (auth required)" if d["auth"] else " (no auth)"))
    norm = "" if d["normalised"] in (None, d["path"]) else f" normalised to {d['normalised']},"
    return f"ours: {ours},{norm} {d['why']} | article: {d['article']} ({d['article_why']})"


async def error_rows(stack: DemoStack) -> list[dict]:
    """A 502 (connection refused), a 504 and a 413 through ``stack``: status, content type and
    the problem document's type, title and status (the request id is left out: random)."""
    cases = [("connection refused", "GET", "/api/dead/x", None),
             ("upstream too slow (0.5 s timeout)", "GET", "/slow/sleep?seconds=2", None),
             ("body of 2 KiB on a 1 KiB route", "POST", "/small/upload", b"x" * 2048)]
    rows = []
    async with aiohttp.ClientSession() as client:
        for name, method, path, body in cases:
            async with client.request(method, stack.gateway_url + path, data=body) as r:
                doc = json.loads(await r.read())
                rows.append({"case": name, "status": r.status, "content_type": r.content_type,
                             "type": doc["type"].rsplit("/", 1)[-1], "title": doc["title"],
                             "body_status": doc["status"]})
    return rows


def least_connections_rows(requests: int = 9, instances: int = 3) -> list[dict]:
    """``requests`` long requests in flight at once (picked, never finished) through the
    article's "least connections" and the workbook's: how many each instance holds."""
    out = []
    for balancer in (NaiveLeastConnections([f"inventory-{i + 1}" for i in range(instances)]),
                     make_balancer("least_connections", [Backend(f"inventory-{i + 1}") for i in range(instances)])):
        for _ in range(requests):
            balancer.start(balancer.pick())
        out.append({"balancer": type(balancer).__name__,
                    **{b.name: balancer.inflight(b) for b in balancer.backends}})
    return out


FUZZ_SEGMENTS = ["api", "public", "admin", "users", "x", "..", ".", "%2e%2e", "%2E", "%2F", "%00", "%5C", "%zz",
                 "%", "%41", "%25", "%252e", "~", "", "a;b", "%C3%A9", "é", "a b", "\\"]
FUZZ_METHODS = ["GET", "GET", "POST", "DELETE", "PATCH", "OPTIONS", "BREW", "get"]


async def bounded_fuzz(stack: DemoStack, n: int = 300, seed: int = 0) -> dict:
    """``n`` generated requests (seeded: the same at every run) of odd paths, methods and
    tokens sent as raw bytes to the live gateway; status counts at the socket."""
    rng = stream(seed, "gateway-fuzz")
    host, port = stack.gateway_url.removeprefix("http://").split(":")
    statuses: dict[str, int] = {}
    parser_log = logging.getLogger("aiohttp.server")  # logs each request its parser refuses (400)
    level = parser_log.level
    parser_log.setLevel(logging.CRITICAL)
    try:
        for _ in range(n):
            await _fuzz_one(rng, host, int(port), statuses)
    finally:
        parser_log.setLevel(level)
    return {"requests": n, "statuses": dict(sorted(statuses.items())), "answered_500": statuses.get("500", 0)}


async def _fuzz_one(rng, host: str, port: int, statuses: dict) -> None:
    path = "/" + "/".join(rng.choice(FUZZ_SEGMENTS) for _ in range(rng.randint(1, 5)))
    method = rng.choice(FUZZ_METHODS)
    token = rng.choice(["", "Authorization: Bearer x.y.z\r\n", "Authorization: Bearer \r\n",
                        "Authorization: Basic Zm9vOmJhcg==\r\n", "Authorization: Bearer " + "a" * 9000 + "\r\n"])
    raw = (f"{method} {path} HTTP/1.1\r\nHost: gw\r\n{token}Content-Length: 0\r\nConnection: close\r\n\r\n")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw.encode("utf-8", "surrogateescape"))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    parts = line.split()
    status = parts[1].decode() if len(parts) > 1 else "closed"
    statuses[status] = statuses.get(status, 0) + 1


__all__ = [
    "FUZZ_METHODS",
    "FUZZ_SEGMENTS",
    "MATCHER_PATHS",
    "MATCHER_ROUTES",
    "PLAYGROUND_NOW",
    "TOUR",
    "article_config_report",
    "bounded_fuzz",
    "corrected_config_summary",
    "decision_text",
    "default_secret_forgery",
    "error_rows",
    "header_rows",
    "jwt_playground",
    "live_tour",
    "normalisation_rows",
    "route_decision",
    "route_matcher_rows",
    "streaming_memory",
]
