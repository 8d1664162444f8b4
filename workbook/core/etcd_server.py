"""Start and stop throw-away ``etcd`` servers: one member, or a three-member cluster.

``EtcdServer`` (one member) and ``EtcdCluster`` (``members`` processes forming one raft
group) run Debian's ``etcd`` on free 127.0.0.1 ports, each member in its own temporary
data directory, and wait until every member's ``/health`` says ``true`` (a leader is
elected). ``stop`` ends exactly the processes they started, by PID, and removes the
directories. A cluster member can be killed (SIGKILL, like a crashed machine) and
restarted on the same ports and data directory, so it rejoins.

Election settings are shortened (heartbeat 50 ms, election timeout 500 ms) so that a
cluster notices a dead leader in well under a second; etcd's defaults are 100 ms and
1,000 ms. Clients talk to the v3 JSON gateway that etcd 3.4 serves under ``/v3/``
(``/v3beta/`` is the deprecated alias, removed in 3.5).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from workbook.core.errors import ParameterError
from workbook.core.external import LocalServer, ServiceUnavailable, find_executable, free_port, stop_process

ETCD_HINT = ("install it with `apt-get install -y etcd-server` (Debian/Ubuntu; the binary is /usr/bin/etcd), "
             "`brew install etcd` (macOS) or `conda install -c conda-forge etcd`")

HEARTBEAT_MS = 50
ELECTION_MS = 500


def member_healthy(client_url: str, timeout: float = 0.5) -> bool:
    """Whether ``client_url/health`` answers ``{"health": "true"}`` (the member sees a leader)."""
    try:
        with urllib.request.urlopen(client_url + "/health", timeout=timeout) as reply:
            return json.loads(reply.read().decode()).get("health") == "true"
    except (OSError, ValueError, urllib.error.URLError):
        return False


@dataclass
class EtcdMember:
    """One etcd process: its name, ports, data directory and (while running) its process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster(LocalServer):
    """``members`` etcd processes on 127.0.0.1 forming one cluster; a context manager.

    ``endpoints`` lists the client URLs. ``kill(i)`` SIGKILLs member ``i`` by its PID,
    ``restart(i)`` starts it again with the same name, ports and data (it rejoins).
    """

    def __init__(self, members: int = 3, *, startup_timeout: float = 20.0):
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise ParameterError("members", members, "an integer >= 1")
        self.size = members
        self.startup_timeout = startup_timeout
        self.members: list[EtcdMember] = []
        self._dir: tempfile.TemporaryDirectory | None = None
        self._binary: str | None = None

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self) -> "EtcdCluster":
        try:
            self._binary = find_executable("etcd")
        except ServiceUnavailable as exc:
            raise ServiceUnavailable(f"etcd not found on PATH: {ETCD_HINT}") from exc
        self._dir = tempfile.TemporaryDirectory(prefix="workbook-etcd-")
        used: set[int] = set()
        for i in range(self.size):
            ports = []
            while len(ports) < 2:
                p = free_port()
                if p not in used:
                    used.add(p)
                    ports.append(p)
            self.members.append(EtcdMember(f"m{i}", ports[0], ports[1], f"{self._dir.name}/m{i}"))
        try:
            for i in range(self.size):
                self._spawn(i, state="new")
            self.wait_healthy(range(self.size))
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, i: int, *, state: str) -> None:
        m = self.members[i]
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        m.process = subprocess.Popen(
            [self._binary, "--name", m.name, "--data-dir", m.data_dir,
             "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
             "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
             "--initial-cluster", initial, "--initial-cluster-state", state,
             "--initial-cluster-token", f"workbook-{self.members[0].peer_port}",
             "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
             "--log-level", "error", "--logger", "zap"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def wait_healthy(self, indexes, timeout: float | None = None) -> None:
        """Wait until each listed member answers ``/health`` true (bounded by ``timeout``)."""
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pending = list(indexes)
        while pending and time.monotonic() < deadline:
            for i in list(pending):
                m = self.members[i]
                if m.process is not None and m.process.poll() is not None:
                    err = m.process.stderr.read().decode(errors="replace")[-2000:]
                    raise ServiceUnavailable(
                        f"etcd member {m.name} exited at start (code {m.process.returncode}): {err}")
                if member_healthy(m.client_url):
                    pending.remove(i)
            if pending:
                time.sleep(0.05)
        if pending:
            names = ", ".join(f"{self.members[i].name} ({self.members[i].client_url})" for i in pending)
            raise ServiceUnavailable(f"etcd member(s) {names} not healthy within {timeout}s")

    def kill(self, i: int) -> int:
        """SIGKILL member ``i`` (by the PID this object started) and return that PID."""
        m = self.members[i]
        if not m.running:
            raise ServiceUnavailable(f"etcd member {m.name} is not running")
        pid = m.process.pid
        m.process.kill()
        m.process.wait(5)
        m.process.stderr.close()
        m.process = None
        return pid

    def restart(self, i: int, *, wait: bool = True) -> int:
        """Start member ``i`` again (same name, ports, data directory): it rejoins the cluster."""
        m = self.members[i]
        if m.running:
            raise ServiceUnavailable(f"etcd member {m.name} is already running (pid {m.pid})")
        self._spawn(i, state="existing")
        if wait:
            self.wait_healthy([i])
        return m.pid

    def stop(self) -> None:
        for m in self.members:
            stop_process(m.process)
            m.process = None
        self.members = []
        if self._dir is not None:
            shutil.rmtree(self._dir.name, ignore_errors=True)
            self._dir.cleanup()
            self._dir = None


class EtcdServer(EtcdCluster):
    """A single-member etcd on a free 127.0.0.1 port; ``url`` is its client URL."""

    def __init__(self, *, startup_timeout: float = 20.0):
        super().__init__(1, startup_timeout=startup_timeout)

    @property
    def url(self) -> str:
        return self.members[0].client_url
