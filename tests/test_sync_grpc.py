"""gRPC twin of the REST demo: metadata and deadline propagation, status mapping, same pipeline."""

import asyncio

import grpc

from workbook.resilience import Backoff, CircuitBreaker, OverallTimeout, Pipeline, Retry, State, Timeout, is_retryable
from workbook.transport.context import RequestContext, context_scope
from workbook.transport.grpc_demo import GrpcInventoryClient, GrpcStatusError, start_grpc_server
from workbook.labs.ch02_sync.protocols import compare_protocols


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def with_server(body):
    server = await start_grpc_server("inventory")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            return await body(server, GrpcInventoryClient(channel))
    finally:
        await server.stop()


def test_get_stock_propagates_context_and_deadline():
    async def body(server, client):
        with context_scope(RequestContext("corr-9", user_id="u-2", tenant_id="acme")):
            return await OverallTimeout(3.0).call_async(client.get_stock, "plum")

    reply = run(with_server(body))
    assert reply["available"] == 7 and reply["correlation_id"] == "corr-9"
    assert reply["user_id"] == "u-2" and reply["tenant_id"] == "acme"
    assert 2000 < reply["deadline_ms"] <= 3000


def test_status_codes_map_to_retryable_or_not():
    async def body(server, client):
        errors = []
        try:
            await client.get_stock("banana")
        except GrpcStatusError as e:
            errors.append(e)
        server.faults.update({"error_rate": 1.0})
        try:
            await client.get_stock("apple")
        except GrpcStatusError as e:
            errors.append(e)
        return errors

    not_found, unavailable = run(with_server(body))
    assert not_found.code is grpc.StatusCode.NOT_FOUND and not is_retryable(not_found)
    assert "banana" in str(not_found) and "inventory GetStock" in str(not_found)
    assert unavailable.code is grpc.StatusCode.UNAVAILABLE and is_retryable(unavailable)


def test_same_pipeline_retries_then_opens_breaker_over_grpc():
    async def body(server, client):
        breaker = CircuitBreaker("grpc", sliding_window_size=4, minimum_number_of_calls=4,
                                 wait_duration_in_open_state=60)
        pipeline = Pipeline(retry=Retry(2, Backoff(0.001, 1, 0.001, "none")), breaker=breaker,
                            per_try_timeout=Timeout(0.3))
        server.faults.update({"error_rate": 1.0})
        outcomes = []
        for _ in range(3):
            try:
                await pipeline.call_async(client.get_stock, "apple")
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        server.faults.update({"error_rate": 0.0, "hang": True})
        return outcomes, breaker.state, client.sent, server.counts["stock"]

    outcomes, state, sent, served = run(with_server(body))
    assert outcomes == ["GrpcStatusError", "GrpcStatusError", "CallNotPermittedError"]
    assert state is State.OPEN and sent == served == 4


def test_grpc_puts_fewer_bytes_on_the_wire_than_rest_json():
    rest, grpc_result = run(compare_protocols(20))
    assert rest.answer["available"] == grpc_result.answer["available"] == 12
    assert rest.answer["correlation_id"] == grpc_result.answer["correlation_id"]
    assert 0 < grpc_result.bytes_per_request < rest.bytes_per_request
    assert rest.bytes_up_per_request > 100  # request line + headers, counted for real
