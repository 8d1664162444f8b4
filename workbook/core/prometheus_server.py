"""Run Debian's ``prometheus`` and ``promtool`` (2.42) for the tests that check the workbook against them.

``PrometheusServer`` starts ``prometheus`` on a free 127.0.0.1 port with a temporary
config (no scrape targets unless given) and temporary storage, waits until
``/-/ready`` answers, and stops exactly the process it started (by its PID). Before it
starts, ``import_openmetrics(text)`` writes samples into its storage with
``promtool tsdb create-blocks-from openmetrics``, so a test can ask the real PromQL
engine about samples the test chose (``query(expr, t)`` calls ``/api/v1/query`` at a
fixed evaluation time). ``promtool(*args)`` runs ``promtool`` with a bounded time and
returns its exit code and output. Missing binaries raise ``ServiceUnavailable`` with an
install hint; the fixtures in ``tests/fixtures/prometheus.py`` skip on it locally.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workbook.core.external import (INSTALL_HINTS, LocalServer, ServiceUnavailable, find_executable, free_port,
                                    stop_process, wait_until_ready)

__all__ = ["PrometheusServer", "PromtoolResult", "promtool", "PROMETHEUS_HINT"]

PROMETHEUS_HINT = ("install it with `apt-get install -y prometheus` (Debian/Ubuntu; it brings promtool) or "
                   "download it from https://prometheus.io/download/")
INSTALL_HINTS.setdefault("prometheus", PROMETHEUS_HINT)
INSTALL_HINTS.setdefault("promtool", PROMETHEUS_HINT)


@dataclass(frozen=True)
class PromtoolResult:
    """What ``promtool`` answered: its exit code and combined output."""

    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def promtool(*args: str, timeout: float = 60.0, cwd: str | Path | None = None) -> PromtoolResult:
    """Run ``promtool args...`` (at most ``timeout`` seconds); never raises on a non-zero exit."""
    binary = find_executable("promtool")
    try:
        proc = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailable(f"promtool {' '.join(map(str, args))} did not finish within {timeout}s") from exc
    return PromtoolResult(proc.returncode, proc.stdout + proc.stderr)


class PrometheusServer(LocalServer):
    """A throw-away ``prometheus`` on 127.0.0.1; use as a context manager.

    ``scrape_configs`` (a list of Prometheus scrape-config dicts) is written into the
    temporary config as it is; the default has none, so the server only answers queries
    on what ``import_openmetrics`` put in its storage.
    """

    def __init__(self, *, scrape_configs: list | None = None, scrape_interval: str = "15s",
                 startup_timeout: float = 30.0, request_timeout: float = 10.0):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.scrape_configs = scrape_configs or []
        self.scrape_interval = scrape_interval
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.process: subprocess.Popen | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="workbook-prometheus-")
        self.data_dir = Path(self._dir.name) / "data"
        self.data_dir.mkdir()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def import_openmetrics(self, text: str) -> PromtoolResult:
        """Write OpenMetrics samples into the (not yet started) server's storage as TSDB blocks."""
        if self.process is not None:
            raise ServiceUnavailable("import_openmetrics must run before start(): Prometheus loads blocks at startup")
        source = Path(self._dir.name) / "import.om"
        source.write_text(text, encoding="utf-8")
        result = promtool("tsdb", "create-blocks-from", "openmetrics", str(source), str(self.data_dir))
        if not result.ok:
            raise ServiceUnavailable(f"promtool could not import the samples: {result.output.strip()}")
        return result

    def start(self) -> "PrometheusServer":
        binary = find_executable("prometheus")
        config = Path(self._dir.name) / "prometheus.yml"
        lines = ["global:", f"  scrape_interval: {self.scrape_interval}", f"  evaluation_interval: {self.scrape_interval}"]
        config.write_text("\n".join(lines) + "\n" + "scrape_configs: " + json.dumps(self.scrape_configs) + "\n")
        self._log = open(Path(self._dir.name) / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir}",
             f"--web.listen-address={self.host}:{self.port}", "--storage.tsdb.retention.time=100y",
             "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        log_path = Path(self._dir.name) / "prometheus.log"
        try:
            wait_until_ready(self.process, self._ready, name="prometheus", timeout=self.startup_timeout,
                             exit_detail=lambda: log_path.read_text(errors="replace")[-2000:], interval=0.05)
        except ServiceUnavailable:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=0.5) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def api(self, path: str, **params) -> dict:
        """GET ``/api/v1/<path>`` with ``params``; the decoded ``data`` (``ServiceUnavailable`` on an error)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.request_timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise ServiceUnavailable(f"prometheus answered {exc.code} to {path}: {body.get('error', body)}") from exc
        if body.get("status") != "success":
            raise ServiceUnavailable(f"prometheus answered {body} to {path}")
        return body["data"]

    def query(self, expr: str, t: float) -> dict:
        """``/api/v1/query`` at time ``t`` (seconds since the epoch): the ``data`` object."""
        return self.api("query", query=expr, time=f"{t:.3f}")

    def query_values(self, expr: str, t: float) -> dict[tuple, float]:
        """An instant-vector answer as ``{sorted label pairs: value}`` (a scalar under key ``()``)."""
        data = self.query(expr, t)
        if data["resultType"] == "scalar":
            return {(): float(data["result"][1])}
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in data["result"]}

    def stop(self) -> None:
        stop_process(self.process, grace=10)
        self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
