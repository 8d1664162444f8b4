"""The article's nginx upstream as a validated configuration, and the access-log parser."""

from __future__ import annotations

import pytest

from workbook.balancing import AccessRecord, NginxUpstream, parse_access_log
from workbook.core import ConfigError, ParameterError

SERVERS = ("127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003")


def test_renders_the_articles_upstream_with_passive_health_settings():
    text = NginxUpstream(SERVERS, name="inventory").render()
    assert "upstream inventory {" in text and "least_conn;" in text
    assert "    server 127.0.0.1:4002 max_fails=1 fail_timeout=10s;" in text
    assert "proxy_next_upstream error timeout invalid_header http_500 http_502 http_503 http_504;" in text
    assert "proxy_connect_timeout 5000ms;" in text and "proxy_read_timeout 10000ms;" in text
    assert "proxy_pass http://inventory;" in text
    # left for the launcher, and nginx's own variables untouched
    assert "listen 127.0.0.1:{{port}};" in text and "{{prefix}}/access.log upstreams" in text
    assert "$upstream_addr" in text


def test_round_robin_writes_no_method_and_weights_are_written():
    text = NginxUpstream(SERVERS[:2], method="round_robin", weights=(5, 1)).render()
    lines = [line.strip() for line in text.splitlines()]
    assert "least_conn;" not in lines
    assert "server 127.0.0.1:4001 weight=5 max_fails=1" in text


@pytest.mark.parametrize("kwargs,field", [
    ({"servers": ()}, "servers"),
    ({"servers": ("localhost",)}, r"servers\[0\]"),
    ({"method": "fastest"}, "method"),
    ({"max_fails": -1}, "max_fails"),
    ({"fail_timeout": 0.5}, "fail_timeout"),
    ({"next_upstream": ("error", "http_418")}, r"next_upstream\[1\]"),
    ({"read_timeout": 0}, "read_timeout"),
    ({"weights": (1,)}, "weights"),
    ({"weights": (1, 0, 1)}, r"weights\[1\]"),
    ({"name": "bad name"}, "name"),
])
def test_bad_settings_are_named(kwargs, field):
    args = {"servers": SERVERS, **kwargs}
    with pytest.raises(ParameterError, match=f"'{field}'"):
        NginxUpstream(**args)


def test_an_unknown_template_placeholder_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\{\{upstreams\}\}"):
        NginxUpstream(SERVERS).render("upstream {{upstreams}} {}")


def test_access_log_records_list_every_attempt():
    log = ('1764254303.123 200 0.004 "127.0.0.1:4001, 127.0.0.1:4002" "502, 200" "0.001, 0.003"\n'
           'garbage line\n'
           '1764254303.200 502 0.000 "inventory" "502" "0.000"\n'
           '1764254303.300 200 0.002 "127.0.0.1:4003" "200" "0.002"\n')
    records = parse_access_log(log)
    assert records[0] == AccessRecord(1764254303.123, 200, 0.004, ("127.0.0.1:4001", "127.0.0.1:4002"), ("502", "200"))
    assert [r.attempts for r in records] == [2, 1, 1]


@pytest.mark.nginx
@pytest.mark.timeout(30)
def test_nginx_accepts_the_rendered_configuration(nginx_binary):
    from workbook.core.nginx_server import NginxServer
    with NginxServer(NginxUpstream(SERVERS, fail_timeout=3).render()) as server:
        import urllib.request
        assert urllib.request.urlopen(f"{server.url}/nginx-health", timeout=5).read() == b"healthy\n"
