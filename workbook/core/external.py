"""Start and stop local servers the Redis-backed variants need (``redis-server``).

``RedisServer`` starts ``redis-server`` on a free 127.0.0.1 port with persistence off,
waits until it answers PING, and stops exactly the process it started (by its PID).
It raises ``ServiceUnavailable`` with an install hint when the binary is missing.
Tests use it through the ``redis_server`` fixture in ``tests/conftest.py``, which skips
with that hint locally and fails under CI (``CI`` set).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from workbook.core.errors import WorkbookError

INSTALL_HINTS = {
    "redis-server": "install it with `apt-get install -y redis-server` (Debian/Ubuntu), "
    "`brew install redis` (macOS) or `conda install -c conda-forge redis-server`",
}


class ServiceUnavailable(WorkbookError, RuntimeError):
    """A system service the code needs is not installed or did not start."""


def find_executable(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/bin")
    if not path:
        raise ServiceUnavailable(f"{name} not found on PATH: {INSTALL_HINTS.get(name, 'install it')}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throw-away ``redis-server`` on 127.0.0.1; use as a context manager."""

    def __init__(self, port: int | None = None, *, startup_timeout: float = 10.0):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = find_executable("redis-server")
        self._dir = tempfile.TemporaryDirectory(prefix="workbook-redis-")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
             "--dir", self._dir.name, "--daemonize", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")
                raise ServiceUnavailable(f"redis-server exited at start (code {self.process.returncode}): {err}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise ServiceUnavailable(f"redis-server did not answer PING on port {self.port} within {self.startup_timeout}s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
