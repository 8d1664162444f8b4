"""Shared fixtures: system services that some tests need.

A test that needs a service it cannot find is skipped with a message saying what to
install, except under CI (the ``CI`` environment variable is set), where a missing
service is a failure: CI must install everything.
"""

import os

import pytest

# Fixtures for other servers (etcd, nginx, prometheus...) live in tests/fixtures/<name>.py,
# one module per server; the root conftest.py loads them all. missing_service is shared.

from workbook.core.external import INSTALL_HINTS, RedisServer, ServiceUnavailable


def missing_service(message: str):
    """Skip locally, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so a missing service is a failure: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free 127.0.0.1 port for the whole session (stopped by PID)."""
    server = RedisServer()
    try:
        server.start()
    except ServiceUnavailable as exc:
        missing_service(f"{exc} ({INSTALL_HINTS['redis-server']})")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """The server's URL, with its database flushed before the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url
