"""Shared fixtures: system services that some tests need.

A test that needs a service it cannot find is skipped with a message saying what to
install, except under CI (the ``CI`` environment variable is set), where a missing
service is a failure: CI must install everything.
"""


import pytest

# Fixtures for other servers (etcd, nginx, prometheus...) live in tests/fixtures/<name>.py,
# one module per server; the root conftest.py loads them all. missing_service and running
# (start a server or skip/fail with an install hint) live in tests/fixtures/__init__.py.

from tests.fixtures import missing_service, running  # noqa: F401 - missing_service re-exported
from workbook.core.external import INSTALL_HINTS, RedisServer


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free 127.0.0.1 port for the whole session (stopped by PID)."""
    server = running(RedisServer(), INSTALL_HINTS["redis-server"])
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
