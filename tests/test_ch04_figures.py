"""Chapter 4's figures and widgets: built from the experiments' numbers, titles that state the point."""

from workbook.labs.ch04_data import commit, events, figures as viz, replication, saga


def test_figures_carry_the_experiments_numbers():
    lag = {"fast": events.projection_lag(rate=20, duration=3, poll_interval=0.05, batch=50, per_event=0.002, seed=0)}
    fig = viz.projection_lag_figure(lag)
    assert list(fig.data[0].y) == lag["fast"].behind and "lag grows" in fig.layout.title.text
    fig = viz.replication_lag_figure({"a": [0.01, 0.02, 0.03, 0.04]})
    assert list(fig.data[0].y)[-1] == 1.0 and list(fig.data[0].x)[0] == 10.0
    ryw = [replication.read_your_writes(e, clients=2, updates=3, delay=0.05, seed=0) for e in (False, True)]
    fig = viz.ryw_figure(ryw)
    assert list(fig.data[0].y) == [ryw[0].stale, 0]
    rows = commit.blocking([1.0], seed=0)
    assert list(viz.blocking_figure(rows).data[0].y) == [rows[0].max_lock_hold]
    s = saga.saga_run("none")
    cmp = [{"how": "2PC", "fault": "none", "lock time": 0.06, "exposure": 0.0},
           {"how": "saga", "fault": "none", "lock time": s.lock_time, "exposure": s.exposure}]
    assert len(viz.saga_vs_2pc_figure(cmp).data) == 4


def test_timeline_figure_shows_locks_and_the_crash():
    result = commit.run({"coordinator.after_votes": 1.0})
    fig = viz.commit_timeline_figure(result, "coordinator.after_votes")
    names = {t.name for t in fig.data}
    assert {"locks held", "crash", "restarted", "in doubt", "aborted"} <= names
    assert "locks held up to 1.0" in fig.layout.title.text and "outcome unknown" in fig.layout.title.text


def test_pbs_panel_redraws_on_a_slider_and_bounds_r_and_w_by_n():
    panel = viz.pbs_panel(seed=0)
    before = panel.summary.value
    assert before.startswith("N=3, R=1, W=1, mean delay 10 ms")
    panel.sliders["lag_ms"].value = 40.0
    assert panel.summary.value != before and "mean delay 40 ms" in panel.summary.value
    panel.sliders["n"].value = 5
    assert panel.sliders["r"].max == 5
    panel.sliders["r"].value = 3
    panel.sliders["w"].value = 3
    assert "R + W > N" in panel.summary.value and "never above 1 %" in panel.summary.value
    assert [t.name for t in panel.figure.data] == ["N=5, R=3, W=3", "N=5, R=1, W=1"]   # chosen = majority
    panel.sliders["w"].value = 2
    assert [t.name for t in panel.figure.data] == ["N=5, R=3, W=2", "N=5, R=1, W=1", "N=5, R=3, W=3"]


def test_timeline_panel_follows_the_selected_crash_point():
    panel = viz.timeline_panel(commit.crash_points(commit.PARTICIPANTS), downtime=1.0)
    assert "coordinator.after_votes" in panel.figure.layout.title.text
    panel.pick.value = "no crash"
    assert "no crash" in panel.figure.layout.title.text and "outcome commit" in panel.figure.layout.title.text
