"""Figures show the numbers they are given; the control panel redraws from the package's results."""

from workbook.labs.ch03_async.experiments import compare_modes, lag_experiment, ordering_experiment
from workbook.sagas.order_flow import single_saga_trace
from workbook.labs.ch03_async import figures as viz


def test_delivery_bars_carry_the_counts():
    results = compare_modes(messages=300, crash_rate=0.05, seed=2)
    fig = viz.delivery_bars(results)
    lost, dup = fig.data
    assert list(lost.x) == ["at-most-once", "at-least-once", "effectively-once"]
    assert list(lost.y) == [r.lost for r in results] and list(dup.y) == [r.duplicated for r in results]


def test_sequence_diagram_has_one_arrow_per_message_on_the_right_lifelines():
    run = single_saga_trace("shipping")
    lanes = ["orchestrator", "inventory", "payment", "shipping"]
    fig = viz.sequence_diagram(run.trace, lanes)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == len(run.trace) == 10
    for a, (_, src, dst, _) in zip(arrows, run.trace):
        assert (a.ax, a.x) == (lanes.index(src), lanes.index(dst))
    assert list(fig.layout.xaxis.ticktext) == lanes


def test_ordering_and_lag_figures():
    o = [ordering_experiment(keyed=k, messages=100, seed=1) for k in (True, False)]
    assert list(viz.ordering_bars(o).data[0].y) == [o[0].violations, o[1].violations]
    lags = lag_experiment((1, 4), burst=200, partitions=4)
    fig = viz.lag_figure(lags)
    assert [len(t.x) for t in fig.data] == [len(r.samples) for r in lags]
    assert max(fig.data[0].y) == lags[0].max_lag


def test_control_panel_redraws_when_a_control_changes():
    panel = viz.control_panel(messages=100, seed=0)
    (mode, consumers), (crash, step) = panel.children[0].children, panel.children[1].children
    text, bars, seq = panel.children[2:]
    before = text.value
    crash.value = 0.2
    assert text.value != before and "crash rate 0.2" in bars.layout.title.text
    expected = compare_modes(messages=100, consumers=consumers.value, crash_rate=0.2, seed=0)
    assert list(bars.data[0].y) == [r.lost for r in expected]
    step.value = "inventory"
    assert "inventory refused (step 1)" in seq.layout.title.text
    assert sum(1 for a in seq.layout.annotations if a.showarrow) == len(single_saga_trace("inventory").trace)
    mode.value = "at-most-once"
    assert "at-most-once: lost" in text.value and "<- chosen" in text.value.split("\n")[0]


def test_lag_curves_are_one_per_panel_so_none_hides_another():
    lags = lag_experiment((1, 4, 8), burst=200, partitions=4)
    assert lags[1].samples == lags[2].samples  # identical curves: drawn on one axis, one would hide the other
    fig = viz.lag_figure(lags)
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x3"]
    assert [a.text for a in fig.layout.annotations] == [f"{r.consumers} consumer{'s' if r.consumers > 1 else ''}: "
                                                        f"{r.drain_time:.1f} s" for r in lags]
    assert "do not drain it faster" in fig.layout.title.text


def test_panel_text_gives_the_saga_verdict_on_one_line():
    from workbook.labs.ch03_async.figures import crash_panel_text

    text = crash_panel_text(messages=100, seed=0)
    assert text.splitlines()[-1] == ("saga failing at shipping: compensated; PASS: 1 sagas: 0 completed, "
                                     "1 compensated, 0 unfinished")
