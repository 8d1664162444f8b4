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
    run = breaker_timeline("window", seed=1)
    fig = breaker_figure(run)
    bars = {t.name: sum(t.y) for t in fig.data if t.type == "bar"}
    assert bars == run.counts()
    xs, ys = state_steps(run)
    assert len(xs) == len(run.transitions) + 2 and ys[0] == 0
