"""The demo inventory operation over gRPC (grpcio, ``inventory.proto``), and a byte counter.

* ``start_grpc_server(name, seed)``: a ``grpc.aio`` server on 127.0.0.1 (ephemeral port)
  serving ``Inventory.GetStock`` with the same stock and the same runtime ``Faults`` as
  the REST demo (``server.faults`` is changed directly: gRPC has no admin route here).
  Faults map to status codes: an injected error is ``UNAVAILABLE`` (or
  ``RESOURCE_EXHAUSTED`` for ``error_status=429``), an unknown sku ``NOT_FOUND``.
* ``GrpcInventoryClient``: ``await client.get_stock(sku)`` -> dict, sending the request
  context as metadata (``x-correlation-id``, ``x-user-id``, ``x-tenant-id``) and the
  current deadline as gRPC's own deadline (it travels as the ``grpc-timeout`` header).
  A failed RPC raises ``GrpcStatusError`` with ``retryable`` set for UNAVAILABLE,
  RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED, so the same ``Pipeline`` works around it.
* ``ByteCounter``: a TCP proxy on 127.0.0.1 that counts the bytes each way, to compare
  what HTTP/1.1 + JSON and HTTP/2 + protobuf put on the wire for the same operation.

The generated modules ``inventory_pb2`` / ``inventory_pb2_grpc`` are committed; the
command that regenerates them is at the top of ``inventory.proto``.
"""

from __future__ import annotations

import asyncio
import random

import grpc

from workbook.transport import inventory_pb2 as pb
from workbook.transport import inventory_pb2_grpc as pb_grpc
from workbook.transport.context import RequestContext, current_context
from workbook.resilience.deadline import current_deadline
from workbook.transport.demo_service import STOCK, Faults
from workbook.core.errors import WorkbookError

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                             grpc.StatusCode.DEADLINE_EXCEEDED})


class GrpcStatusError(WorkbookError):
    """A failed RPC: ``code`` (grpc.StatusCode), ``details``, which service and method."""

    def __init__(self, code, details: str, *, service: str = "", method: str = ""):
        self.code, self.details, self.service, self.method = code, details, service, method
        self.retryable = code in RETRYABLE_CODES
        super().__init__(f"{service} {method} failed with gRPC {code.name}: {details}")


class _Servicer(pb_grpc.InventoryServicer):
    def __init__(self, name, faults, rng, stopping):
        self.name, self.faults, self.rng, self.stopping = name, faults, rng, stopping
        self.counts = {"stock": 0, "errors": 0, "hung": 0}

    async def GetStock(self, request, context):
        self.counts["stock"] += 1
        meta = {k: v for k, v in context.invocation_metadata()}
        remaining = context.time_remaining()
        faults = self.faults
        if faults.latency:
            await asyncio.sleep(faults.latency)
        if faults.hang:
            self.counts["hung"] += 1
            await self.stopping.wait()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} is stopping")
        if faults.error_rate and self.rng.random() < faults.error_rate:
            self.counts["errors"] += 1
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if faults.error_status == 429 else grpc.StatusCode.UNAVAILABLE
            await context.abort(code, f"{self.name} failed on purpose (error_rate={faults.error_rate:g})")
        if request.sku not in STOCK:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"sku {request.sku!r} does not exist (known: {', '.join(sorted(STOCK))})")
        return pb.StockReply(sku=request.sku, available=STOCK[request.sku], service=self.name,
                             correlation_id=meta.get("x-correlation-id", ""), user_id=meta.get("x-user-id", ""),
                             tenant_id=meta.get("x-tenant-id", ""),
                             deadline_ms=-1 if remaining is None else int(remaining * 1000))

    async def Health(self, request, context):
        return pb.HealthReply(status="ok", service=self.name)


class GrpcServer:
    """A running demo server: ``address`` (host:port), ``faults``, ``counts``; ``await stop()``."""

    def __init__(self, server, address, servicer):
        self._server, self.address, self._servicer = server, address, servicer
        self.faults = servicer.faults
        self.counts = servicer.counts

    async def stop(self) -> None:
        self._servicer.stopping.set()
        await self._server.stop(grace=0.5)


async def start_grpc_server(name: str = "inventory", *, seed: int = 0, host: str = "127.0.0.1") -> GrpcServer:
    server = grpc.aio.server()
    servicer = _Servicer(name, Faults(), random.Random(seed), asyncio.Event())
    pb_grpc.add_InventoryServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    return GrpcServer(server, f"{host}:{port}", servicer)


class GrpcInventoryClient:
    def __init__(self, channel: grpc.aio.Channel, service: str = "inventory"):
        self.stub = pb_grpc.InventoryStub(channel)
        self.service = service
        self.sent = 0

    async def get_stock(self, sku: str, *, context: RequestContext | None = None) -> dict:
        context = context or current_context() or RequestContext.new()
        metadata = [(k.lower(), v) for k, v in context.headers().items()]
        deadline = current_deadline()
        timeout = None if deadline is None else deadline.remaining()
        self.sent += 1
        try:
            reply = await self.stub.GetStock(pb.StockRequest(sku=sku), metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise GrpcStatusError(exc.code(), exc.details() or "", service=self.service, method="GetStock") from None
        return {"sku": reply.sku, "available": reply.available, "service": reply.service,
                "correlation_id": reply.correlation_id, "user_id": reply.user_id or None,
                "tenant_id": reply.tenant_id or None, "deadline_ms": None if reply.deadline_ms < 0 else reply.deadline_ms}


class ByteCounter:
    """A TCP proxy on 127.0.0.1 in front of ``target`` (host, port) counting payload bytes each way."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.up = 0  # client -> server
        self.down = 0  # server -> client
        self._server: asyncio.AbstractServer | None = None
        self.port: int | None = None
        self._tasks: set = set()

    async def start(self) -> "ByteCounter":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def reset(self) -> None:
        self.up = self.down = 0

    async def _pipe(self, reader, writer, direction):
        try:
            while data := await reader.read(65536):
                if direction == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        tasks = [asyncio.ensure_future(self._pipe(client_reader, server_writer, "up")),
                 asyncio.ensure_future(self._pipe(server_reader, client_writer, "down"))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
