"""Chapter 6's gateway experiments return the plain data the notebook prints."""

import asyncio

import pytest

from workbook.labs.ch06_gateway import gateway_runs as runs


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_configuration_reports():
    report = runs.article_config_report()
    assert report["routes"] == 2 and len(report["findings"]) >= 10 and report["schema_problems"]
    assert any("your-secret-key" in f["problem"] for f in report["findings"])
    rows = runs.corrected_config_summary()
    assert [r["route"] for r in rows] == ["users", "orders"]
    assert rows[1]["limit"] == "token_bucket 50/60s" and rows[1]["attempts"] == 1


def test_route_matcher_and_normalisation_rows():
    rows = {r["path"]: r for r in runs.route_matcher_rows()}
    assert rows["/api/usersettings"]["article_route"] == "users" and rows["/api/usersettings"]["route"] == "404"
    bypass = rows["/api/public/%2e%2e/admin/keys"]
    assert bypass["article_route"] == "public" and bypass["route"] == "admin" and bypass["auth_required"] is True
    norm = {r["raw"]: r for r in runs.normalisation_rows()}
    assert norm["/a%2Fb"]["refused"] and norm["/a/./b/../c"]["normalised"] == "/a/c"


def test_jwt_playground_and_the_default_secret():
    rows = run(runs.jwt_playground())
    assert [r["attack"] for r in rows if r["accepted"]] == ["genuine"] and all(r["as_expected"] for r in rows)
    forged = run(runs.default_secret_forgery())
    assert forged["article_accepts"] is True and forged["ours"].startswith("refused")


def test_live_tour_and_headers():
    rows = run(runs.live_tour())
    assert len(rows) == len(runs.TOUR)
    assert [r["instance"] for r in rows[:3]] == ["inventory-1", "inventory-2", "inventory-1"]
    assert [r["status"] for r in rows[-7:]] == [200] * 5 + [429] * 2
    assert 500 not in {r["status"] for r in rows}
    headers = run(runs.header_rows())
    got = {r["header"]: r["upstream_got"] for r in headers["request"]}
    assert got["X-Private"] is None and got["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert got["x-envoy-expected-rq-timeout-ms"] == "<ms left of 30000>"
    back = {r["header"]: r["client_got"] for r in headers["response"]}
    assert back["X-Upstream-Hop"] is None and back["X-End-To-End"] == "kept" and back["X-Request-Id"] == "tour-1"


@pytest.mark.slow
def test_streaming_memory_numbers():
    result = run(runs.streaming_memory(20))
    assert result["upload"]["bytes"] == result["download"]["bytes"] == 20 * 1024 * 1024
    assert result["upload"]["rss_growth_mb"] < 50 and result["download"]["rss_growth_mb"] < 50
