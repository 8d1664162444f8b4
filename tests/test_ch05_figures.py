"""Chapter 5's figures hold the experiments' numbers; the balancer panel redraws when a control moves."""

from __future__ import annotations

import pytest

from workbook.labs.ch05_discovery import balancing_runs, experiments
from workbook.labs.ch05_discovery import figures as viz


@pytest.fixture(scope="module")
def rows():
    return balancing_runs.compare_balancers(0, algorithms=["round_robin", "least_connections"], duration=4.0)


def test_balancer_figure_groups_latencies_and_stacks_shares_to_one(rows):
    fig = viz.balancer_figure(rows)
    latency = [t for t in fig.data if t.xaxis == "x"]
    shares = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in latency] == ["p50", "p99", "p99 of arrivals during the stall"]
    assert list(latency[1].y) == [r["p99_ms"] for r in rows]
    assert [t.name for t in shares] == ["fast-1", "fast-2", "fast-3", "slow-1", "slow-2"]
    top = [b + y for b, y in zip(shares[-1].base, shares[-1].y)]
    assert top == pytest.approx([1.0, 1.0], abs=1e-3)


def test_self_preservation_figure_shows_both_registries():
    comparison = experiments.self_preservation_comparison()
    fig = viz.self_preservation_figure(comparison)
    listed = {t.name: list(t.y) for t in fig.data}
    assert min(listed["listed, self-preservation on (Eureka)"]) > 0
    assert min(listed["listed, no self-preservation"]) == 0


def test_detector_figure_has_one_curve_per_family():
    fig = viz.detector_figure(experiments.detector_sweep_table(heartbeats=600))
    assert [t.name for t in fig.data] == [label for _, _, label in viz.FAMILIES]


def test_remap_figure_stacks_what_must_move_and_what_moved_needlessly():
    fig = viz.remap_figure(balancing_runs.remap_shares(n=5, keys=2000))
    assert [t.name for t in fig.data][0].startswith("owned by the leaving backend")


def test_balancer_panel_redraws_on_a_control():
    panel = viz.balancer_panel(algorithms=("round_robin", "least_connections"), duration=3.0)
    before = panel.summary.value
    assert before.startswith("fast 10 ms, slow 30 ms, fast-1 stalls 0.5 s")
    panel.controls["stall_s"].value = 1.5
    after = panel.summary.value
    assert "fast-1 stalls 1.5 s" in after and after != before
    panel.controls["algorithms"].value = ("least_request",)
    assert [t.x[0] for t in panel.figure.data if t.xaxis == "x"] == ["least_request"] * 3
    assert panel.summary.value == viz.panel_text(viz.panel_rows(["least_request"], 10, 30, 1.5, "fast-1",
                                                                 duration=3.0), 10, 30, 1.5, "fast-1")
