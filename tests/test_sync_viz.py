"""The breaker panel redraws when a slider moves; figures carry the experiment's numbers."""

from workbook.labs.ch02_sync.experiments import breaker_timeline
from workbook.labs.ch02_sync.figures import breaker_figure, breaker_panel, panel_run, breaker_panel_text, state_steps


def test_panel_redraws_on_slider_change():
    panel = breaker_panel(seed=0)
    assert "breaker-panel" in panel._dom_classes
    assert all("breaker-panel-slider" in s._dom_classes for s in panel.sliders.values())
    before_y, before_text = tuple(panel.figure.data[0].y), panel.summary.value
    assert before_text == breaker_panel_text(panel_run(seed=0))
    panel.sliders["slow_rate"].value = 0.0
    panel.sliders["failure_rate"].value = 0.0
    assert tuple(panel.figure.data[0].y) != before_y
    assert panel.summary.value == breaker_panel_text(panel_run(0.0, 0.0, seed=0))
    assert "rejected 0" in panel.summary.value


def test_figure_matches_run_counts():
    run = breaker_timeline("sliding_window", seed=1)
    fig = breaker_figure(run)
    bars = {t.name: sum(t.y) for t in fig.data if t.type == "bar"}
    assert bars == run.counts()
    xs, ys = state_steps(run)
    assert len(xs) == len(run.transitions) + 2 and ys[0] == 0


def test_both_state_lines_are_visible_and_the_fault_band_is_labelled():
    from workbook.labs.ch02_sync.breaker_runs import compare_breakers

    comparison = compare_breakers(0)
    fig = breaker_figure([comparison.consecutive, comparison.window])
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(lines) == 2 and lines[0].line.dash == "dash"
    # the article's breaker stays CLOSED: its line must not sit on the other one
    assert set(lines[0].y) != set(lines[1].y) and min(lines[0].y) != 0
    assert any("fault" in (a.text or "") for a in fig.layout.annotations)
    assert fig.layout.shapes and fig.layout.shapes[0].x0 == 20.0


def test_timeout_figure_has_one_axis_per_panel_and_names_infinite_points():
    from workbook.labs.ch02_sync.figures import timeout_figure
    from workbook.labs.ch02_sync.timeouts import timeout_sweep

    points = timeout_sweep((0.02, 0.1, 0.4), requests=300)
    fig = timeout_figure(points)
    assert not any(getattr(fig.layout, name).overlaying for name in ("yaxis", "yaxis2"))
    titles = [a.text for a in fig.layout.annotations]
    assert any("infinite at 20 ms" in t for t in titles)
    assert list(fig.data[1].x) == [0.1, 0.4]  # the infinite p99 is not drawn


def test_hedging_figure_is_linear():
    from workbook.labs.ch02_sync.figures import hedging_figure
    from workbook.labs.ch02_sync.hedging import hedging

    fig = hedging_figure([hedging(None, requests=300), hedging(0.05, requests=300)])
    assert fig.layout.yaxis.type in (None, "linear", "-")
