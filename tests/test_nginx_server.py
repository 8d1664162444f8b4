"""The nginx launcher: foreground master on a free 127.0.0.1 port, stopped by its PID."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest

from workbook.core.external import ServiceUnavailable
from workbook.core.nginx_server import NginxServer

pytestmark = [pytest.mark.nginx, pytest.mark.timeout(60)]

HELLO = 'server { listen 127.0.0.1:{{port}}; access_log {{prefix}}/access.log; location / { return 200 "hello"; } }'


def test_serves_on_127_0_0_1_in_the_foreground_and_stops_by_pid(nginx_binary):
    server = NginxServer(HELLO)
    with server:
        pid, prefix = server.process.pid, server.prefix
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert urllib.request.urlopen(server.url, timeout=5).read() == b"hello"
        assert (prefix / "nginx.pid").read_text().strip() == str(pid)   # daemon off: the master is our child
        conf = (prefix / "nginx.conf").read_text()
        assert "daemon off;" in conf and f"listen 127.0.0.1:{server.port};" in conf and "{{" not in conf
        for _ in range(100):  # nginx logs a request after answering it
            if "GET / HTTP/1.1" in server.read("access.log"):
                break
            time.sleep(0.02)
        assert "GET / HTTP/1.1" in server.read("access.log")
    assert server.process is None and not Path(prefix).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_configuration_nginx_refuses_is_reported_with_nginxs_message(nginx_binary):
    with pytest.raises(ServiceUnavailable, match='unknown directive "no_such_directive"'):
        NginxServer("no_such_directive on;").start()


def test_a_missing_binary_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    import workbook.core.external as external
    monkeypatch.setattr(external.shutil, "which", lambda *a, **k: None)
    with pytest.raises(ServiceUnavailable, match="nginx not found.*apt-get install"):
        NginxServer(HELLO).start()
