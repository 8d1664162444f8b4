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


def accepts_connections(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_ready(process: subprocess.Popen, ready, *, name: str, timeout: float, exit_detail=None,
                     interval: float = 0.02) -> None:
    """Poll ``ready()`` until it is true, bounded by ``timeout`` seconds.

    Raises ``ServiceUnavailable`` when the process exits first (with ``exit_detail()``, e.g.
    the tail of its log, in the message) or when time runs out. The caller stops the process.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = exit_detail() if exit_detail is not None else stderr_tail(process)
            raise ServiceUnavailable(f"{name} exited at start (code {process.returncode}): {detail}")
        if ready():
            return
        time.sleep(interval)
    raise ServiceUnavailable(f"{name} was not ready within {timeout:g} s")


def stderr_tail(process: subprocess.Popen) -> str:
    if process.stderr is None:
        return ""
    return process.stderr.read().decode(errors="replace")[-2000:].strip()


def stop_process(process: subprocess.Popen | None, *, grace: float = 5.0) -> None:
    """Stop exactly this process: SIGTERM, then SIGKILL if it has not exited after ``grace`` s.

    Its stderr pipe, if any, is closed. Nothing else is signalled.
    """
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stderr:
        process.stderr.close()


class LocalServer:
    """What every throw-away server shares: ``with Server(...) as s:`` starts and stops it."""

    def start(self):  # pragma: no cover - each server defines it
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - each server defines it
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class RedisServer(LocalServer):
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
        try:
            wait_until_ready(self.process, self._ping, name="redis-server", timeout=self.startup_timeout)
        except ServiceUnavailable:
            self.stop()
            raise
        return self

    def _ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
