"""A live gateway on 127.0.0.1 in front of the demo inventory services, for tests and the notebook.

``DemoStack.start()`` starts two ``make_demo_app`` inventory instances, an echo upstream
(``make_echo_app``: returns what it received, streams bodies in and out, sleeps, resets,
answers a chosen status), a JWKS endpoint for an RS256 and an ES256 key, and the gateway
configured by ``demo_config`` (routes below), all on free ports. ``stack.token(scopes)``
mints a valid token; ``await stack.stop()`` stops everything it started.

Routes: ``stock`` (GET ``/api/stock`` -> inventory ``/stock``, scope ``stock:read``),
``orders`` (POST ``/api/orders`` -> inventory ``/orders``, scope ``orders:write``),
``public`` (``/api/public``, no auth) and ``admin`` (``/api/admin``, scope ``admin``) to the
echo upstream, ``limited`` (``/api/limited``, no auth, 5 per minute by sliding log: no
window edge for a test to straddle), ``echo`` (``/echo``, no auth, any method, 256 MiB
bodies), ``small`` (``/small``, 1 KiB bodies), ``slow`` (``/slow``, 0.5 s timeout) and
``dead`` (``/api/dead``: an instance on a closed port).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from workbook.auth import SigningKey, jwks_document
from workbook.core.external import free_port
from workbook.core.realtime import AppServers
from workbook.gateway.app import Gateway
from workbook.gateway.config import GatewaySettings, parse_config
from workbook.transport.demo_service import make_demo_app

DEMO_ISSUER = "https://id.shop.test"
DEMO_AUDIENCE = "shop-api"
MiB = 1024 * 1024
HITS = web.AppKey("hits", dict)


def make_echo_app() -> web.Application:
    """An upstream that shows what the gateway sent it."""
    app = web.Application(client_max_size=1024 ** 3)
    hits: dict[str, int] = {}
    app[HITS] = hits

    async def sink(request):
        n = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            n += len(chunk)
        return web.json_response({"bytes": n})

    async def source(request):
        total = int(request.query.get("bytes", "0"))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = total
        await response.prepare(request)
        block = b"x" * (64 * 1024)
        left = total
        while left > 0:
            piece = block[:min(left, len(block))]
            await response.write(piece)
            left -= len(piece)
        await response.write_eof()
        return response

    async def sleep(request):
        await asyncio.sleep(float(request.query.get("seconds", "1")))
        return web.json_response({"slept": True})

    async def reset(request):
        request.transport.close()
        await asyncio.sleep(0.05)
        return web.Response(text="never sent")

    async def status(request):
        key = request.path
        hits[key] = hits.get(key, 0) + 1
        code = int(request.match_info["code"])
        return web.json_response({"status": code, "hits": hits[key]}, status=code)

    async def echo(request):
        body = await request.read()
        key = request.path
        hits[key] = hits.get(key, 0) + 1
        return web.json_response(
            {"method": request.method, "path": request.path, "raw_path": request.raw_path,
             "headers": [[k, v] for k, v in request.headers.items()], "body_bytes": len(body)},
            headers={"Connection": "X-Upstream-Hop", "X-Upstream-Hop": "secret", "Keep-Alive": "timeout=5",
                     "Proxy-Authenticate": "Basic", "Trailer": "X-Checksum", "Upgrade": "h2c",
                     "X-End-To-End": "kept", "Set-Cookie": "session=abc"})

    app.add_routes([web.post("/echo/sink", sink), web.get("/echo/source", source), web.get("/slow/sleep", sleep),
                    web.get("/echo/sleep", sleep), web.get("/echo/reset", reset),
                    web.route("*", "/echo/status/{code}", status), web.route("*", "/{tail:.*}", echo)])
    return app


def demo_config(*, inventory: list[str], echo: str, jwks_url: str | None = None, dead: str | None = None,
                hmac_secrets: dict | None = None) -> dict:
    """The demo gateway's configuration as a dict (what a YAML file would hold)."""
    jwt = {"issuer": DEMO_ISSUER, "audience": DEMO_AUDIENCE, "algorithms": ["RS256", "ES256"]}
    if jwks_url:
        jwt["jwks_url"] = jwks_url
    if hmac_secrets:
        jwt["hmac_secrets"] = hmac_secrets
        jwt["algorithms"].append("HS256")
    dead = dead or f"http://127.0.0.1:{free_port()}"
    open_ = {"required": False}
    return {
        "jwt": jwt,
        "rate_limiters": {
            "per-client": {"algorithm": "token_bucket", "limit": 1000, "period_seconds": 1, "key": "client+route"},
            "five-per-minute": {"algorithm": "sliding_log", "limit": 5, "period_seconds": 60, "key": "route"},
        },
        "services": {
            "inventory": {"balancer": "round_robin",
                          "instances": [{"id": f"inventory-{i + 1}", "url": u} for i, u in enumerate(inventory)]},
            "echo": {"instances": [{"id": "echo-1", "url": echo}]},
            "dead": {"instances": [{"id": "dead-1", "url": dead}]},
        },
        "routes": [
            {"name": "stock", "path": "/api/stock", "methods": ["GET"], "upstream": "inventory",
             "rewrite_prefix": "/stock", "auth": {"scopes": ["stock:read"]}, "rate_limit": "per-client",
             "retries": {"attempts": 3}, "timeout_seconds": 5},
            {"name": "orders", "path": "/api/orders", "methods": ["POST"], "upstream": "inventory",
             "rewrite_prefix": "/orders", "auth": {"scopes": ["orders:write"]}, "retries": {"attempts": 1}},
            {"name": "public", "path": "/api/public", "upstream": "echo", "auth": open_},
            {"name": "admin", "path": "/api/admin", "upstream": "echo", "auth": {"scopes": ["admin"]}},
            {"name": "limited", "path": "/api/limited", "upstream": "echo", "auth": open_,
             "rate_limit": "five-per-minute"},
            {"name": "echo", "path": "/echo", "upstream": "echo", "auth": open_, "max_body_bytes": 256 * MiB,
             "timeout_seconds": 30, "retries": {"attempts": 3}},
            {"name": "small", "path": "/small", "upstream": "echo", "auth": open_, "max_body_bytes": 1024},
            {"name": "slow", "path": "/slow", "upstream": "echo", "auth": open_, "timeout_seconds": 0.5},
            {"name": "dead", "path": "/api/dead", "upstream": "dead", "auth": open_, "retries": {"attempts": 2}},
        ],
    }


class DemoStack:
    """Everything ``start`` started; ``gateway_url``, ``gateway``, ``keys``, ``token()``."""

    def __init__(self):
        self.servers: list[AppServers] = []
        self.gateway: Gateway | None = None
        self.gateway_url = ""
        self.inventory_urls: list[str] = []
        self.echo_url = ""
        self.jwks_url = ""
        self.keys: tuple[SigningKey, ...] = ()
        self.settings: GatewaySettings | None = None
        self.echo_app: web.Application | None = None

    @property
    def echo_hits(self) -> dict[str, int]:
        """Requests the echo upstream answered, by path (``/echo/status/...`` and the echo route)."""
        return self.echo_app[HITS]

    @classmethod
    async def start(cls, *, instances: int = 2, config_overrides=None, keys=None, seed: int = 0,
                    **gateway_options) -> "DemoStack":
        stack = cls()
        try:
            stack.keys = keys or (SigningKey.generate("RS256", "rs-demo-1"), SigningKey.generate("ES256", "es-demo-1"))
            jwks_app = web.Application()

            async def jwks(request):
                return web.json_response(jwks_document(*stack.keys))

            jwks_app.router.add_get("/.well-known/jwks.json", jwks)
            stack.echo_app = make_echo_app()
            backends = await AppServers.start(*[make_demo_app(f"inventory-{i + 1}", seed=seed + i)
                                                for i in range(instances)], stack.echo_app, jwks_app)
            stack.servers.append(backends)
            stack.inventory_urls, (stack.echo_url, jwks_base) = backends.urls[:instances], backends.urls[instances:]
            stack.jwks_url = f"{jwks_base}/.well-known/jwks.json"
            data = demo_config(inventory=stack.inventory_urls, echo=stack.echo_url, jwks_url=stack.jwks_url)
            if config_overrides:
                config_overrides(data)
            stack.settings = parse_config(data, "demo_config")
            stack.gateway = Gateway(stack.settings, source="demo_config", **gateway_options)
            app = await stack.gateway.application()
            front = await AppServers.start(app)
            stack.servers.append(front)
            stack.gateway_url = front.urls[0]
        except BaseException:
            await stack.stop()
            raise
        return stack

    def token(self, scopes=("stock:read",), *, sub: str = "alice", key: int = 0, lifetime: int = 600, **claims) -> str:
        now = int(time.time())
        body = {"iss": DEMO_ISSUER, "aud": DEMO_AUDIENCE, "sub": sub, "iat": now, "exp": now + lifetime,
                "scope": " ".join(scopes), **claims}
        return self.keys[key].sign(body)

    def bearer(self, scopes=("stock:read",), **kw) -> dict:
        return {"Authorization": f"Bearer {self.token(scopes, **kw)}"}

    async def stop(self) -> None:
        while self.servers:
            await self.servers.pop().stop()
