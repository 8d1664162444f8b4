"""Serve aiohttp apps on 127.0.0.1 with ephemeral ports, from a test or a notebook cell.

``async with serve(app_a, app_b) as urls:`` starts both and yields their base URLs.
In a notebook, where starting, calling and stopping are different cells, use
``servers = await AppServers.start(app_a)``, call ``servers.urls``, then
``await servers.stop()``. Both need a running loop (top-level ``await`` in a cell);
never call ``asyncio.run`` inside a kernel.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from aiohttp import web


class AppServers:
    """Running aiohttp apps; ``urls[i]`` is the base URL of the i-th app."""

    def __init__(self):
        self._runners: list[web.AppRunner] = []
        self.urls: list[str] = []

    @classmethod
    async def start(cls, *apps: web.Application, host: str = "127.0.0.1") -> "AppServers":
        servers = cls()
        try:
            for app in apps:
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                servers._runners.append(runner)
                site = web.TCPSite(runner, host, 0)
                await site.start()
                port = runner.addresses[0][1]
                servers.urls.append(f"http://{host}:{port}")
        except BaseException:
            await servers.stop()
            raise
        return servers

    async def stop(self) -> None:
        while self._runners:
            await self._runners.pop().cleanup()
        self.urls = []

    def __repr__(self):
        return f"AppServers({len(self._runners)} running)"


@asynccontextmanager
async def serve(*apps: web.Application, host: str = "127.0.0.1"):
    """Start ``apps`` on ``host`` with ephemeral ports; yield their base URLs; stop them."""
    servers = await AppServers.start(*apps, host=host)
    try:
        yield servers.urls
    finally:
        await servers.stop()
