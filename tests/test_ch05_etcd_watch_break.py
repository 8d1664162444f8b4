"""A watch stream that breaks mid-response (the etcd member was killed) is a RegistryUnavailable.

Found running chapter 5's cluster demo: killing the member that served the resolver's
watch raised aiohttp's ClientPayloadError out of ``wait_for_change``, which ended the
resolver's watch loop (it only retries on RegistryUnavailable) and resurfaced at close.
A fake etcd on 127.0.0.1 answers ``/v3/watch`` with a chunked stream and drops the
connection in the middle of it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from workbook.core.realtime import AppServers
from workbook.discovery import EtcdRegistry, RegistryUnavailable, Resolver


def broken_etcd() -> web.Application:
    async def range_(request):
        return web.json_response({"header": {"revision": "5"}, "kvs": []})

    async def status(request):
        return web.json_response({"header": {"revision": "5"}})

    async def watch(request):
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"result": {"created": true, "header": {"revision": "5"}}}\n')
        await asyncio.sleep(0.05)
        request.transport.close()  # the member dies mid-stream
        return resp

    app = web.Application()
    app.router.add_post("/v3/kv/range", range_)
    app.router.add_post("/v3/maintenance/status", status)
    app.router.add_post("/v3/watch", watch)
    return app


def test_a_broken_watch_stream_is_registry_unavailable_and_the_resolver_keeps_retrying():
    async def main():
        servers = await AppServers.start(broken_etcd())
        try:
            async with EtcdRegistry(servers.urls[0], request_timeout=1.0) as reg:
                try:
                    await reg.wait_for_change("cart", 5, timeout=2.0)
                    raised = None
                except Exception as exc:  # noqa: BLE001 - the type is what is tested
                    raised = exc
                assert isinstance(raised, RegistryUnavailable), repr(raised)
                assert servers.urls[0] in str(raised)
                res = await Resolver(reg, "cart", watch_timeout=2.0, retry_initial=0.05, retry_max=0.1).start()
                await asyncio.sleep(0.5)
                assert not res._task.done()  # still watching (retrying), not dead
                assert res.status.failures >= 1 and "RegistryUnavailable" in res.status.last_error
                await res.close()  # no exception resurfaces
        finally:
            await servers.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_registry_that_cannot_start_closes_its_http_session():
    """``async with EtcdRegistry(dead endpoint)`` raised without closing its aiohttp session
    (``__aexit__`` is not called when ``__aenter__`` raises): "Unclosed client session"
    surfaced later, in whatever notebook cell ran the garbage collector."""
    from workbook.core.external import free_port

    async def main():
        reg = EtcdRegistry(f"http://127.0.0.1:{free_port()}", request_timeout=0.5)
        try:
            async with reg:
                pass
        except RegistryUnavailable:
            pass
        return reg._session

    assert asyncio.run(main()) is None
