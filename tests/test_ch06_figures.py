"""Chapter 6's figures, widgets and the lab functions added for the notebook."""

import asyncio

import pytest

from workbook.core.errors import ParameterError
from workbook.core.virtual_time import run_virtual
from workbook.gateway.demo import DemoStack
from workbook.labs.ch06_gateway import figures as viz
from workbook.labs.ch06_gateway import gateway_runs, ratelimit_runs
from workbook.ratelimit import RATE_LIMIT_ALGORITHMS


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_timeline_figure_has_one_row_per_algorithm_and_counts_every_arrival():
    binned = {a: ratelimit_runs.binned(ratelimit_runs.admissions_over_time(a), 0.25) for a in RATE_LIMIT_ALGORITHMS}
    fig = viz.admissions_timeline_figure(binned, 0.25, title="point")
    assert len(fig.data) == 2 * len(RATE_LIMIT_ALGORITHMS) and fig.layout.title.text == "point"
    admitted, rejected = fig.data[0], fig.data[1]
    assert sum(admitted.y) - sum(rejected.y) == len(ratelimit_runs.crafted_arrivals())
    assert all(v <= 0 for v in rejected.y)


def test_max_in_any_window_shows_the_fixed_window_edge():
    busiest = {a: ratelimit_runs.max_in_any_window(ratelimit_runs.admissions_over_time(a))
               for a in RATE_LIMIT_ALGORITHMS}
    assert busiest == {"fixed_window": 18, "sliding_log": 10, "sliding_window": 10, "token_bucket": 19,
                       "leaky_bucket": 19, "gcra": 19}
    assert ratelimit_runs.max_in_any_window([]) == 0
    rows = [{"t": t, "allowed": True} for t in (0.0, 0.5, 1.0, 1.2)]
    assert ratelimit_runs.max_in_any_window(rows, 1.0) == 3  # 0.5, 1.0, 1.2 (the window is half-open)


def test_memory_concurrency_admits_exactly_the_limit_and_the_article_over_admits():
    result = run_virtual(ratelimit_runs.memory_concurrency(1000, 100, seed=0))
    admitted = result["admitted"]
    assert all(admitted[a] == 100 for a in RATE_LIMIT_ALGORITHMS)
    article = admitted["article fixed_window (GET then INCR)"]
    assert 100 < article <= 1000
    assert run_virtual(ratelimit_runs.memory_concurrency(1000, 100, seed=0))["admitted"] == admitted  # repeatable
    assert result["article_round_trips"] == 1000 + article  # a GET each, an INCR per admitted
    with pytest.raises(ParameterError, match="'limit'"):
        run_virtual(ratelimit_runs.memory_concurrency(10, 0))


def test_panel_figure_and_the_ratelimit_panel_recount_when_a_control_changes():
    result = ratelimit_runs.panel("token_bucket", 10.0, 10)
    fig = viz.panel_figure(result)
    assert sum(fig.data[0].y) == result["admitted"] and sum(fig.data[1].y) == result["rejected"]
    assert "51 admitted" in fig.layout.title.text
    panel = viz.ratelimit_panel("token_bucket", 10.0, 10)
    assert "ratelimit-panel" in panel._dom_classes
    before = panel.summary.value
    panel.controls["burst"].value = 2
    assert panel.summary.value != before and "burst 2" in panel.summary.value
    panel.controls["algorithm"].value = "fixed_window"
    expected = ratelimit_runs.panel("fixed_window", 10.0, 2)
    assert panel.summary.value == viz.panel_summary(expected)
    assert sum(panel.figure.data[0].y) == expected["admitted"]


def test_article_limiter_figure_marks_what_exceeds_the_limit():
    boundary = {"limit": 10, "window": 60, "span_seconds": 0.2, "requests": 20,
                "admitted": {"article fixed_window": 20, "gcra": 10}}
    concurrency = {"requests": 1000, "limit": 100, "admitted": {"article": 540, "gcra": 100}}
    fig = viz.article_limiter_figure(boundary, concurrency)
    assert list(fig.data[0].y) == [20, 10] and list(fig.data[1].y) == [540, 100]
    assert fig.data[0].marker.color[0] == viz.BAD and fig.data[0].marker.color[1] == viz.OK


def test_route_decision_and_the_tester():
    d = gateway_runs.route_decision("/api/usersettings")
    assert d["article"] == "users" and d["route"] == "404"
    d = gateway_runs.route_decision("/api/public/%2e%2e/admin/keys")
    assert (d["article"], d["normalised"], d["route"], d["auth"]) == ("public", "/api/admin/keys", "admin", True)
    assert gateway_runs.route_decision("/api/orders")["route"] == "405"
    assert gateway_runs.route_decision("/a%2Fb")["route"] == "400"
    assert "normalised to /api/admin/keys" in gateway_runs.decision_text(d)
    tester = viz.route_tester("/api/users/42")
    assert "route-tester" in tester._dom_classes and "ours: users" in tester.result.value
    tester.controls["path"].value = "/api/public/../admin"
    assert "ours: admin (auth required)" in tester.result.value and "article: public" in tester.result.value
    tester.controls["method"].value = "POST"
    assert "405" in tester.result.value


def test_live_error_rows_and_a_bounded_fuzz_without_500():
    async def main():
        stack = await DemoStack.start()
        try:
            rows = await gateway_runs.error_rows(stack)
            fuzz = await gateway_runs.bounded_fuzz(stack, 60, seed=3)
            again = await gateway_runs.bounded_fuzz(stack, 60, seed=3)
            tour = await gateway_runs.live_tour(stack)
            statuses = dict(stack.gateway.statuses)
        finally:
            await stack.stop()
        return rows, fuzz, again, tour, statuses

    rows, fuzz, again, tour, statuses = run(main())
    assert [(r["status"], r["content_type"]) for r in rows] == [(502, "application/problem+json"),
                                                                (504, "application/problem+json"),
                                                                (413, "application/problem+json")]
    assert all(r["status"] == r["body_status"] for r in rows)
    assert fuzz == again and fuzz["requests"] == 60 == sum(fuzz["statuses"].values())
    assert fuzz["answered_500"] == 0 and 500 not in statuses
    assert len(tour) == len(gateway_runs.TOUR)  # the shared stack's earlier requests are not in the rows
    assert tour[0]["request"] == "GET /api/stock/apple" and tour[0]["status"] == 200


def test_header_rows_tell_a_refused_client_when_to_come_back():
    fixed = ratelimit_runs.ratelimit_header_rows("fixed_window", 5, 60.0)
    assert [r["status"] for r in fixed] == [200] * 5 + [429] * 2
    assert fixed[5]["Retry-After"] == "25" and fixed[5]["RateLimit"] == '"5-per-60s";r=0;t=25'
    assert all(r["RateLimit-Policy"] == '"5-per-60s";q=5;w=60' for r in fixed)
    gcra = ratelimit_runs.ratelimit_header_rows("gcra", 5, 60.0)
    assert gcra[5]["Retry-After"] == "7" and gcra[0]["Retry-After"] is None
    with pytest.raises(ParameterError, match="'requests'"):
        ratelimit_runs.ratelimit_header_rows(requests=0)


def test_live_429_after_the_tour_carries_the_ratelimit_fields():
    async def main():
        stack = await DemoStack.start()
        try:
            await gateway_runs.live_tour(stack)
            return await ratelimit_runs.live_429(stack)
        finally:
            await stack.stop()

    got = run(main())
    assert got == {"status": 429, "RateLimit-Policy": '"five-per-minute";q=5;w=60', "RateLimit remaining": "0",
                   "Retry-After within 1..60 s": True, "content type": "application/problem+json"}


def test_least_connections_rows_show_the_articles_first_instance():
    naive, ours = gateway_runs.least_connections_rows(9, 3)
    assert naive == {"balancer": "NaiveLeastConnections", "inventory-1": 9, "inventory-2": 0, "inventory-3": 0}
    assert ours == {"balancer": "LeastConnections", "inventory-1": 3, "inventory-2": 3, "inventory-3": 3}
