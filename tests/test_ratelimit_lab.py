"""Chapter 6's rate-limit experiments return the numbers the notebook prints."""

from __future__ import annotations

import asyncio

import pytest

from workbook.core.errors import ParameterError
from workbook.labs.ch06_gateway import ratelimit_runs as runs
from workbook.ratelimit import RATE_LIMIT_ALGORITHMS


def test_timeline_summary_is_exact_and_shows_each_algorithm():
    rows = {r["algorithm"]: r for r in runs.timeline_summary()}
    assert list(rows) == list(RATE_LIMIT_ALGORITHMS)
    assert all(r["requests"] == 105 for r in rows.values())
    # the fixed window lets 10 through on each side of the edge at 3.0; the sliding log
    # remembers the steady stream and lets 2 through
    assert rows["fixed_window"]["edge 2.9-3.1"] == 10 and rows["sliding_log"]["edge 2.9-3.1"] == 2
    # the three buckets admit the same sequences: burst of 10 plus 10/s of refill
    assert rows["token_bucket"] == {**rows["gcra"], "algorithm": "token_bucket"}
    assert rows["leaky_bucket"] == {**rows["gcra"], "algorithm": "leaky_bucket"}
    assert rows["gcra"]["first burst"] == 12  # 10 at once + 0.29 s x 10/s
    assert [r["admitted"] for r in rows.values()] == [50, 41, 39, 51, 51, 51]
    assert runs.timeline_summary() == list(rows.values())  # the same at every run


def test_binned_counts_every_arrival_once():
    rows = runs.admissions_over_time("sliding_window", 10, 1.0)
    bins = runs.binned(rows, 0.25)
    assert sum(b["admitted"] + b["rejected"] for b in bins) == len(runs.crafted_arrivals())
    assert sum(b["admitted"] for b in bins) == sum(r["allowed"] for r in rows)
    assert bins[0] == {"start": 0.0, "admitted": 10, "rejected": 15}
    with pytest.raises(ParameterError, match="'width'"):
        runs.binned(rows, 0)


def test_admissions_over_time_refuses_bad_parameters_by_name():
    with pytest.raises(ParameterError, match="'burst'"):
        runs.admissions_over_time("gcra", 10, 1.0, 0)
    with pytest.raises(ParameterError, match="'algorithm'"):
        runs.admissions_over_time("leaky", 10, 1.0)


@pytest.mark.redis
def test_article_boundary_burst(redis_url):
    result = asyncio.run(runs.article_boundary_burst(redis_url))
    assert result["admitted"]["article fixed_window"] == 20 == 2 * result["limit"]
    assert result["admitted"]["fixed_window"] == 20  # any fixed window does it: the algorithm's nature
    assert all(result["admitted"][a] == 10 for a in RATE_LIMIT_ALGORITHMS if a != "fixed_window")


@pytest.mark.redis
def test_article_concurrency(redis_url):
    result = asyncio.run(runs.article_concurrency(redis_url))
    admitted = result["admitted"]
    assert all(admitted[a] == 100 for a in RATE_LIMIT_ALGORITHMS)
    assert admitted["article fixed_window"] > 100
    assert admitted["article sliding_window"] > 100 and admitted["article token_bucket"] > 100


@pytest.mark.redis
def test_fail_modes(redis_server):  # needs redis-server; starts and stops its own
    result = asyncio.run(runs.fail_modes(4))
    first = result["fail open"].pop("first warning")
    assert "Redis unavailable" in first and "failing open" in first
    assert result["fail open"] == {"admitted": 4, "refused": 0, "backend_errors": 4, "failed_open": 4,
                                   "failed_closed": 0, "warnings_logged": 1}
    assert result["fail closed"]["refused"] == 4 and result["fail closed"]["failed_closed"] == 4
    assert result["article"]["admitted"] == 4 and result["article"]["warnings_logged"] == 0


def test_panel_rate_and_burst_for_every_algorithm():
    for algorithm in RATE_LIMIT_ALGORITHMS:
        out = runs.panel(algorithm, 10.0, 10)
        assert out["admitted"] + out["rejected"] == len(runs.crafted_arrivals())
        assert out["admitted"] == {r["algorithm"]: r for r in runs.timeline_summary()}[algorithm]["admitted"]
    assert runs.panel("gcra", 5.0, 2)["admitted"] < runs.panel("gcra", 10.0, 10)["admitted"]
    with pytest.raises(ParameterError, match="'rate'"):
        runs.panel("gcra", 0, 10)
