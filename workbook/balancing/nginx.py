"""Server-side discovery with nginx: the source article's upstream as a validated configuration.

``NginxUpstream`` holds the settings of an nginx ``upstream`` + ``proxy_pass`` location:
the balancing method (the article: ``least_conn``), the servers with ``max_fails`` /
``fail_timeout`` (nginx's passive health checking), ``proxy_next_upstream`` (which
failures are retried on the next server) and the proxy timeouts. ``render()`` fills the
template ``data/discovery/nginx_upstream.conf``; ``workbook.core.nginx_server.NginxServer``
runs the result with the real nginx. The defaults are the article's values (connect 5 s,
send and read 10 s, retry on error, timeout, invalid_header, 500, 502, 503) plus 504,
and nginx's own ``max_fails=1 fail_timeout=10s``.

What nginx does with them (``ngx_http_upstream_round_robin.c``, nginx/nginx 3f6f7824d4e2):
a failed attempt (a refused connection, a timeout, or a status listed in
``proxy_next_upstream``) counts against the server; after ``max_fails`` of them within
``fail_timeout`` the server is skipped until ``fail_timeout`` has passed, then it gets one
request again (a probe with live traffic). nginx compares whole seconds (``ngx_time()``),
so a server is out for between ``fail_timeout`` and ``fail_timeout + 1`` s. Without
``upstream zone`` each worker keeps its own counts (the launcher runs one worker).

``parse_access_log`` reads the ``upstreams`` log format of the template back: one
``AccessRecord`` per client request with every upstream attempt it took.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from workbook.core.errors import ConfigError, ParameterError
from workbook.core.params import check_choice, check_int, check_number
from workbook.core.resources import data_path

TEMPLATE = ("discovery", "nginx_upstream.conf")

#: what ``proxy_next_upstream`` accepts (nginx 1.22)
NEXT_UPSTREAM_CONDITIONS = ("error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
                            "http_403", "http_404", "http_429", "non_idempotent", "off")

#: the balancing methods of nginx's open-source upstream modules ("round_robin" writes none)
NGINX_METHODS = ("round_robin", "least_conn", "ip_hash", "random", "random two least_conn")

_SERVER = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def _duration(seconds: float) -> str:
    """nginx time syntax: whole milliseconds."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class NginxUpstream:
    """The settings of one upstream and the location proxying to it (validated when built)."""

    servers: tuple[str, ...]
    name: str = "backend"
    method: str = "least_conn"
    max_fails: int = 1
    fail_timeout: int = 10                # whole seconds: nginx parses it in seconds
    next_upstream: tuple[str, ...] = ("error", "timeout", "invalid_header", "http_500", "http_502", "http_503",
                                      "http_504")
    next_upstream_tries: int = 0          # 0: nginx's default, no limit but the number of servers
    next_upstream_timeout: float = 0.0    # 0: no limit
    connect_timeout: float = 5.0
    send_timeout: float = 10.0
    read_timeout: float = 10.0
    weights: tuple[int, ...] = field(default=())

    def __post_init__(self):
        servers = self.servers
        if isinstance(servers, str) or not servers:
            raise ParameterError("servers", servers, "a non-empty list of 'host:port'")
        for i, s in enumerate(servers):
            if not isinstance(s, str) or not _SERVER.match(s):
                raise ParameterError(f"servers[{i}]", s, "'host:port', e.g. '127.0.0.1:8081'")
        object.__setattr__(self, "servers", tuple(servers))
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", self.name):
            raise ParameterError("name", self.name, "an upstream name of letters, digits, '_' or '-'")
        check_choice("method", self.method, NGINX_METHODS)
        check_int("max_fails", self.max_fails, minimum=0)
        check_int("fail_timeout", self.fail_timeout, minimum=1)  # nginx refuses "ms" here
        conditions = self.next_upstream
        if isinstance(conditions, str) or not conditions:
            raise ParameterError("next_upstream", conditions, "a non-empty list of conditions")
        for i, c in enumerate(conditions):
            check_choice(f"next_upstream[{i}]", c, NEXT_UPSTREAM_CONDITIONS)
        object.__setattr__(self, "next_upstream", tuple(conditions))
        check_int("next_upstream_tries", self.next_upstream_tries, minimum=0)
        check_number("next_upstream_timeout", self.next_upstream_timeout, minimum=0)
        for name in ("connect_timeout", "send_timeout", "read_timeout"):
            check_number(name, getattr(self, name), minimum=0, min_exclusive=True)
        if self.weights:
            if len(self.weights) != len(self.servers):
                raise ParameterError("weights", self.weights, f"one weight per server ({len(self.servers)})")
            for i, w in enumerate(self.weights):
                check_int(f"weights[{i}]", w, minimum=1)  # nginx: weight >= 1 (use `down` to drain)
            object.__setattr__(self, "weights", tuple(self.weights))

    def server_lines(self) -> list[str]:
        lines = []
        for i, s in enumerate(self.servers):
            weight = f" weight={self.weights[i]}" if self.weights else ""
            lines.append(f"    server {s}{weight} max_fails={self.max_fails} fail_timeout={self.fail_timeout}s;")
        return lines

    def values(self) -> dict[str, str]:
        """The template's placeholders and what they become."""
        return {
            "upstream": self.name,
            "balancing": "" if self.method == "round_robin" else f"{self.method};",
            "servers": "\n".join(self.server_lines()),
            "next_upstream": " ".join(self.next_upstream),
            "next_upstream_tries": str(self.next_upstream_tries),
            "next_upstream_timeout": "0" if self.next_upstream_timeout == 0 else _duration(self.next_upstream_timeout),
            "connect_timeout": _duration(self.connect_timeout),
            "send_timeout": _duration(self.send_timeout),
            "read_timeout": _duration(self.read_timeout),
        }

    def render(self, template: str | None = None) -> str:
        """The ``http { }`` contents for ``NginxServer`` (``{{port}}`` / ``{{prefix}}`` left for it)."""
        source = "data/discovery/nginx_upstream.conf" if template is None else "template"
        text = data_path(*TEMPLATE).read_text() if template is None else template
        values = self.values()

        def fill(match):
            key = match.group(1)
            if key in ("port", "prefix"):
                return match.group(0)
            if key not in values:
                raise ConfigError(source, "{{" + key + "}}", "a placeholder NginxUpstream knows: "
                                  + ", ".join(sorted(values) + ["port", "prefix"]))
            return values[key]

        return _PLACEHOLDER.sub(fill, text)


@dataclass(frozen=True)
class AccessRecord:
    """One client request as nginx logged it: when, what the client got, every attempt."""

    time: float
    status: int
    request_time: float
    upstreams: tuple[str, ...]
    upstream_statuses: tuple[str, ...]

    @property
    def attempts(self) -> int:
        return len(self.upstreams)


_LINE = re.compile(r'^(?P<msec>\d+\.\d+) (?P<status>\d{3}) (?P<rt>\d+\.\d+) "(?P<addr>[^"]*)" "(?P<ustatus>[^"]*)"')


def _split(value: str) -> tuple[str, ...]:
    # attempts are separated by ", ", internal redirects by " : "; "-" means none
    parts = [p.strip() for p in re.split(r",|:(?= )", value) if p.strip()]
    return tuple(p for p in parts if p != "-")


def parse_access_log(text: str) -> list[AccessRecord]:
    """Records of the template's ``upstreams`` log format (other lines are skipped)."""
    records = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        records.append(AccessRecord(float(m["msec"]), int(m["status"]), float(m["rt"]), _split(m["addr"]),
                                    _split(m["ustatus"])))
    return records
