"""Configuration: the corrected sample loads; the article's sample is audited; every bad
input is an error naming the file, the route and the field."""

import asyncio
import copy
from pathlib import Path

import pytest

from workbook.core.errors import ConfigError, WorkbookError
from workbook.core.external import free_port
from workbook.gateway import Gateway, GatewayConfigError, audit_article_config, load_config, parse_config
from workbook.gateway.demo import demo_config

DATA = Path(__file__).resolve().parent.parent / "data" / "gateway"


def base():
    return demo_config(inventory=["http://127.0.0.1:1"], echo="http://127.0.0.1:2", jwks_url="http://127.0.0.1:3/j",
                       dead="http://127.0.0.1:4")


def problems(data, source="gw.yaml"):
    with pytest.raises(GatewayConfigError) as info:
        parse_config(data, source)
    err = info.value
    assert isinstance(err, ConfigError) and isinstance(err, WorkbookError)
    assert str(err).startswith(f"{source}: ")
    return err.problems


def test_the_corrected_sample_loads():
    cfg = load_config(DATA / "gateway.yaml")
    users = cfg.route("users")
    assert users.methods == ["GET"] and users.rate_limit == "users-100-per-minute" and users.auth.required
    assert cfg.rate_limiters["orders-50-per-minute"].algorithm == "token_bucket"
    assert cfg.rate_limiters["orders-50-per-minute"].limit == 50
    assert [i.weight for i in cfg.services["order-service"].instances] == [2, 1]   # the article's weights
    assert cfg.jwt.leeway_seconds == 30 and cfg.jwt.jwks_url.startswith("http://127.0.0.1")
    moved = cfg.with_instances({"user-service": ["http://127.0.0.1:9001"]})
    assert [i.url for i in moved.services["user-service"].instances] == ["http://127.0.0.1:9001"]


def test_the_article_sample_loads_and_its_problems_are_reported():
    raw, findings, schema_error = audit_article_config(DATA / "article_gateway.yaml")
    assert raw["jwt_secret"] == "your-secret-key" and len(raw["routes"]) == 2
    text = "\n".join(f"{f.element}: {f.problem}" for f in findings)
    assert "jwt_secret: 'your-secret-key' is a well-known default" in text
    assert "/api/users-internal" in text                                  # prefix across segments
    assert "silently" in text                                             # fail open on Redis errors
    assert "60 tokens per second" in text                                 # token bucket misread
    assert "POST may be processed twice" in text
    # and our schema refuses it, naming each field
    lines = str(schema_error).splitlines()
    assert lines[0] == f"{DATA / 'article_gateway.yaml'}: {len(schema_error.problems)} problem(s)"
    assert "  jwt_secret: unknown field (not part of the schema; misspelt?)" in lines
    assert "  routes[0] '/api/users'.upstream: required field is missing" in lines
    assert "  routes[1] '/api/orders'.service_name: unknown field (not part of the schema; misspelt?)" in lines


def test_without_a_secret_the_article_falls_back_to_secret(tmp_path):
    path = tmp_path / "nosecret.yaml"
    path.write_text((DATA / "article_gateway.yaml").read_text().replace('jwt_secret: "your-secret-key"', ""))
    _, findings, _ = audit_article_config(path)
    assert any("falls back to jwt.decode(..., 'secret')" in f.problem for f in findings)


@pytest.mark.parametrize("edit,element,message", [
    (lambda d: d["routes"][0].update(timeout_seconds=-1), "routes[0] 'stock'.timeout_seconds", "greater than 0"),
    (lambda d: d["routes"][1].update(timout=3), "routes[1] 'orders'.timout", "unknown field"),
    (lambda d: d["routes"][0].update(upstream="nope"), "routes[0] 'stock'.upstream", "unknown service 'nope'"),
    (lambda d: d["routes"][0].pop("upstream"), "routes[0] 'stock'.upstream", "required field is missing"),
    (lambda d: d["routes"][0].update(rate_limit="ghost"), "routes[0] 'stock'.rate_limit", "unknown limiter 'ghost'"),
    (lambda d: d["rate_limiters"]["per-client"].update(algorithm="leaky"), "rate_limiters.per-client.algorithm",
     "unknown algorithm 'leaky'"),
    (lambda d: d["rate_limiters"]["per-client"].update(on_backend_error="maybe"),
     "rate_limiters.per-client.on_backend_error", "fail open or fail closed"),
    (lambda d: d["services"]["echo"].update(balancer="fastest"), "services.echo.balancer", "unknown balancer"),
    (lambda d: d["services"]["echo"].update(instances=[]), "services.echo.instances", "at least 1"),
    (lambda d: d["services"]["echo"]["instances"][0].update(url="echo:80"), "services.echo.instances[0] 'echo-1'.url",
     "http://host:port"),
    (lambda d: d["routes"][0].update(methods=["get"]), "routes[0] 'stock'.methods", "unknown method"),
    (lambda d: d["routes"][0].update(path="/api/x/../stock"), "routes[0] 'stock'.path", "not normalised"),
    (lambda d: d["routes"][0].update(match="regex", path="/api/(", rewrite_prefix=None), "routes[0] 'stock'.path",
     "invalid regular expression"),
    (lambda d: d["routes"][2].update(auth={"required": False, "scopes": ["x"]}), "routes[2] 'public'.auth.scopes",
     "scopes without authentication"),
    (lambda d: d.pop("jwt"), "routes[0] 'stock'.auth", "no jwt section"),
    (lambda d: d["jwt"].update(hmac_secrets={"k1": "secret"}, algorithms=["HS256"]), "jwt.hmac_secrets.k1",
     "well-known default"),
    (lambda d: d["jwt"].update(hmac_secrets={"k1": "x" * 10}, algorithms=["HS256"]), "jwt.hmac_secrets.k1",
     "at least 32"),
    (lambda d: d["jwt"].update(algorithms=["none"]), "jwt.algorithms[0]", "HS256"),
    (lambda d: d["jwt"].update(jwks_url="file:///etc/keys"), "jwt.jwks_url", "http(s) URL"),
    (lambda d: d["routes"].append(dict(d["routes"][0])), "routes[9] 'stock'.name", "another route has this name"),
    (lambda d: d["rate_limiters"]["five-per-minute"].update(burst=3), "rate_limiters.five-per-minute.burst",
     "bucket algorithms"),
    (lambda d: d["rate_limiters"]["per-client"].update(backend="redis"), "rate_limiters.per-client.backend",
     "no redis section"),
])
def test_errors_name_the_file_the_route_and_the_field(edit, element, message):
    data = copy.deepcopy(base())
    edit(data)
    found = problems(data)
    assert any(el == element and message in msg for el, msg in found), found


def test_every_problem_is_reported_at_once():
    data = copy.deepcopy(base())
    data["routes"][0]["timeout_seconds"] = 0
    data["routes"][3]["upstream"] = "ghost"
    data["routes"][4]["rate_limit"] = "ghost"
    assert len(problems(data)) == 1   # schema errors first: cross-references wait until the types are right
    data["routes"][0]["timeout_seconds"] = 1
    assert [el for el, _ in problems(data)] == ["routes[3] 'admin'.upstream", "routes[4] 'limited'.rate_limit"]


def test_unreadable_files_and_bad_yaml(tmp_path):
    with pytest.raises(GatewayConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: a\n    path: [\n")
    with pytest.raises(GatewayConfigError, match=r"bad.yaml: 1 problem\(s\)\n  line \d+, column \d+: not valid YAML"):
        load_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n")
    with pytest.raises(GatewayConfigError, match="expected a mapping"):
        load_config(top)


def test_a_jwks_url_that_does_not_answer_stops_the_gateway_from_starting():
    data = copy.deepcopy(base())
    url = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    data["jwt"]["jwks_url"] = url
    gateway = Gateway(parse_config(data, "gw.yaml"), source="gw.yaml")
    with pytest.raises(GatewayConfigError) as info:
        asyncio.run(asyncio.wait_for(gateway.application(), 30))
    assert info.value.problems[0][0] == "jwt.jwks_url" and url in str(info.value) and "did not answer" in str(info.value)
