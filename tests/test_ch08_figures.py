"""Chapter 8's figures and widget panels: built from the lab's data, deterministic, redrawn on change."""

import asyncio

import plotly.io as pio

from workbook.labs.ch08_observability import experiments as ex
from workbook.labs.ch08_observability import figures as viz
from workbook.labs.ch08_observability import traces as tr
from workbook.labs.ch08_observability.dashboard import scripted_run
from workbook.observability import LATENCY_BUCKETS


def test_exponential_buckets_multiply_from_the_first_bound():
    assert viz.exponential_buckets(100, 5.0, 4) == (0.1, 0.5, 2.5, 12.5)
    assert viz.exponential_buckets(5, 2.0, 3) == (0.005, 0.01, 0.02)


def test_quantile_error_figure_has_one_line_per_layout():
    rows = ex.quantile_error({"a": LATENCY_BUCKETS, "b": ex.COARSE}, seed=0, qs=viz.QUANTILES)
    fig = viz.quantile_error_figure(rows)
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[1].y) == [r["error_pct"] for r in rows if r["layout"] == "b"]
    assert fig.layout.title.text


def test_quantile_panel_redraws_when_a_slider_moves():
    panel = viz.quantile_panel(seed=0)
    _start, factor, count = panel.children[0].children
    fig, summary = panel.children[1], panel.children[2]
    before, before_y = summary.value, tuple(fig.data[1].y)
    count.value = 12
    factor.value = 1.5
    assert summary.value != before and tuple(fig.data[1].y) != before_y
    assert "100, 150, 225" in summary.value


def test_alert_timeline_figure_shows_pages_and_states():
    result = asyncio.run(ex.naive_versus_for(0))
    fig = viz.alert_timeline_figure(result)
    names = [t.name for t in fig.data]
    assert "article's manager pages" in names and "for: 5m rule state" in names
    pages = fig.data[names.index("article's manager pages")]
    assert len(pages.x) == len(result["naive_pages"])


def test_slo_figure_highlights_the_recommended_approach():
    rows = ex.slo_table(0, days=30)
    fig = viz.slo_figure(rows)
    assert len(fig.data) == 4 and all(len(t.x) == len(rows) for t in fig.data)
    assert list(fig.data[0].marker.color).count("#00cc96") == 1


def test_trace_figures_are_deterministic_for_a_seed():
    one = tr.one_request(0)
    fig = viz.waterfall_figure(one["waterfall"], one["critical_path"])
    assert [t.name for t in fig.data] == ["span", "critical path"]
    assert len(fig.data[1].x) == len(one["critical_path"])
    assert abs(sum(s["duration_ms"] for s in one["critical_path"]) - one["waterfall"][0]["duration_ms"]) < 0.01
    graph = tr.dependency_edges(0, duration=20.0)["graph"]
    a, b = viz.dependency_figure(graph, seed=0), viz.dependency_figure(graph, seed=0)
    assert pio.to_json(a) == pio.to_json(b)
    assert set(a.data[0].text) == {"gateway", "orders", "inventory", "payments", "shipping", "broker"}


def test_sampling_figure_plots_both_strategies():
    rows = [{"ratio": 0.1, "head_error_recall": 0.1, "tail_error_recall": 1.0},
            {"ratio": 0.5, "head_error_recall": 0.5, "tail_error_recall": 1.0}]
    fig = viz.sampling_figure(rows)
    assert [list(t.y) for t in fig.data] == [[0.1, 0.5], [1.0, 1.0]]


def test_dashboard_figure_and_panel():
    sim = scripted_run(0, until=300)
    fig = viz.dashboard_figure(sim.points)
    assert len(fig.data) == 4 and len(fig.data[0].x) == len(sim.points)
    assert fig.data[0].y[0] is None  # no rate before two scrapes hold requests
    panel = viz.dashboard_panel(seed=0)
    fault, step, _play = panel.children[0].children
    summary = panel.children[2]
    assert "t=0 s" in summary.value
    fault.value = "errors"
    assert panel.sim.fault == "errors"
    for _ in range(3):
        step.click()
    assert panel.sim.now == 180 and "HighErrorRatio=firing" in summary.value
    assert len(panel.children[1].data[1].y) == 12
    assert "dashboard-panel" in panel._dom_classes
