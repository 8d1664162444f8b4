"""Run Debian's ``nginx`` as a throw-away, foreground server on a free 127.0.0.1 port.

``NginxServer(http_config)`` writes an ``nginx.conf`` into a temporary directory
(``daemon off``: the master stays in the foreground as our child, so we stop exactly the
PID we started; pid file, error log and every temp path in that directory, one worker) and
puts ``http_config`` inside its ``http { }`` block, with ``{{port}}`` replaced by the
chosen port and ``{{prefix}}`` by the directory (for an ``access_log``). ``start`` waits
until the port accepts connections; a configuration nginx refuses raises
``ServiceUnavailable`` quoting nginx's own message.

No ``user`` directive is needed. Run as root, the master switches its workers to nginx's
built-in default account (``nobody``, group ``nogroup`` on Debian: checked, the workers
show up as nobody/nogroup); what they need is to reach the temp paths, so the directory
is made 0755 (``mkdtemp`` creates it 0700). Run as any other user, nginx cannot switch
users and the workers run as that user.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from workbook.core.external import (INSTALL_HINTS, LocalServer, ServiceUnavailable, stderr_tail,
                                    accepts_connections, find_executable, free_port, stop_process,
                                    wait_until_ready)

INSTALL_HINTS.setdefault("nginx", "install it with `apt-get install -y nginx-light` or `nginx` (Debian/Ubuntu), "
                                  "`brew install nginx` (macOS) or `conda install -c conda-forge nginx`")

_MAIN = """\
# written by workbook.core.nginx_server: a foreground nginx owned by the process that started it
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log {log_level};
events {{
    worker_connections 256;
}}

http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    access_log off;

{http}
}}
"""


class NginxServer(LocalServer):
    """A foreground ``nginx`` master on 127.0.0.1; use as a context manager."""

    def __init__(self, http_config: str, *, port: int | None = None, workers: int = 1,
                 log_level: str = "notice", startup_timeout: float = 10.0):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.http_config = http_config
        self.workers = workers
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def prefix(self) -> Path:
        """The temporary directory holding nginx.conf, the logs and the temp paths."""
        if self._dir is None:
            raise ServiceUnavailable("nginx is not running: no directory yet")
        return Path(self._dir.name)

    def config_text(self, prefix: str) -> str:
        http = self.http_config.replace("{{port}}", str(self.port)).replace("{{prefix}}", prefix)
        return _MAIN.format(workers=self.workers, prefix=prefix, log_level=self.log_level, http=http)

    def start(self) -> "NginxServer":
        binary = find_executable("nginx")
        self._dir = tempfile.TemporaryDirectory(prefix="workbook-nginx-")
        prefix = self._dir.name
        os.chmod(prefix, 0o755)  # workers running as nobody (when we are root) must reach the temp paths
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(self.config_text(prefix))
        # -e: the error log before the configuration is read (else /var/log/nginx/error.log)
        self.process = subprocess.Popen(
            [binary, "-p", prefix + "/", "-c", str(conf), "-e", f"{prefix}/error.log"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_until_ready(self.process, lambda: accepts_connections(self.host, self.port), name="nginx",
                             timeout=self.startup_timeout,
                             exit_detail=lambda: stderr_tail(self.process) or self.error_log())
        except ServiceUnavailable:
            self.stop()
            raise
        return self

    def error_log(self) -> str:
        """The error log so far ('' if none)."""
        path = self.prefix / "error.log" if self._dir is not None else None
        return path.read_text(errors="replace") if path is not None and path.exists() else ""

    def read(self, name: str) -> str:
        """A file nginx wrote under the prefix (an access log), '' if it does not exist yet."""
        path = self.prefix / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the master we started (SIGTERM: fast shutdown; SIGKILL if it hangs) and clean up."""
        stop_process(self.process)
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
