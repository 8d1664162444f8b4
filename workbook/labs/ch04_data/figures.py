"""Chapter 4's figures and widgets (plotly, ipywidgets): each title states the figure's point.

* ``projection_lag_figure``, ``replication_lag_figure``, ``ryw_figure``, ``pbs_figure``,
  ``commit_timeline_figure``, ``blocking_figure``, ``saga_vs_2pc_figure``: plain figures from
  the experiments' numbers.
* ``pbs_panel``: sliders for N, R, W and the replica lag (mean one-way delay) over a
  ``go.FigureWidget`` of the stale-read probability; the container has the CSS class
  ``pbs-panel``, its summary ``pbs-panel-summary``, each slider ``pbs-panel-<name>``
  (what the browser test looks for).
* ``timeline_panel``: a drop-down of the 20 crash points over the 2PC timeline.
"""

from __future__ import annotations

import plotly.graph_objects as go

from workbook.consistency import Quorum
from workbook.labs.ch04_data import commit
from workbook.labs.ch04_data.quorums import pbs_curves

PBS_TIMES = (0.0, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1)
ACTORS = ("coordinator", "inventory", "payments", "orders")
KINDS = (("crash", "#EF553B", "x"), ("restarted", "#EF553B", "triangle-up"), ("in doubt", "#FFA15A", "circle-open"),
         ("vote", "#636efa", "circle"), ("log", "#2a3f5f", "square"), ("committed", "#00cc96", "diamond"),
         ("aborted", "#ab63fa", "diamond"), ("other", "#19d3f3", "circle"))


def projection_lag_figure(runs: dict) -> go.Figure:
    fig = go.Figure()
    for label, run in runs.items():
        fig.add_scatter(x=run.times, y=run.behind, mode="lines", name=label, line={"shape": "hv"})
    fig.update_layout(title="A projection trails the store by a few events while it keeps up; "
                            "slower than the arrivals, its lag grows without bound",
                      xaxis_title="virtual time (s)", yaxis_title="events not yet projected", height=380)
    return fig


def replication_lag_figure(lags: dict[str, list[float]]) -> go.Figure:
    fig = go.Figure()
    for label, values in lags.items():
        xs = sorted(values)
        n = len(xs)
        step = max(1, n // 200)
        pts = list(range(0, n, step)) + [n - 1]
        fig.add_scatter(x=[xs[i] * 1000 for i in pts], y=[(i + 1) / n for i in pts], mode="lines", name=label)
    fig.update_layout(title="Replication lag is a distribution, not a number: its tail is several times its median",
                      xaxis_title="lag: applied at the replica - committed at the primary (ms)",
                      yaxis_title="fraction of changes", height=380)
    return fig


def ryw_figure(results) -> go.Figure:
    labels = ["session version" if r.enabled else "always the replica" for r in results]
    fig = go.Figure()
    fig.add_bar(x=labels, y=[r.stale for r in results], name="stale reads (own write missing)")
    fig.add_bar(x=labels, y=[r.where.get("primary", 0) for r in results], name="reads sent to the primary")
    fig.update_layout(title="Read-your-writes by session version removes every stale read, "
                            "sending only those reads to the primary", barmode="group", yaxis_title="reads",
                      height=360)
    return fig


def pbs_figure(curves: dict[str, list[float]], times=PBS_TIMES, *, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    for label, ys in curves.items():
        fig.add_scatter(x=[t * 1000 for t in times], y=ys, mode="lines+markers", name=label)
    fig.update_layout(title=title or "Stale reads become rare within a few message delays when R + W <= N, "
                                     "and never happen when R + W > N",
                      xaxis_title="time since the write committed (ms)", yaxis_title="P(read is stale)",
                      yaxis_range=[-0.02, 1], height=400)
    return fig


def _kind(event: str) -> str:
    for kind, _, _ in KINDS:
        if kind == "crash" and event.startswith("CRASH"):
            return kind
        if kind == "vote" and (event.startswith("vote") or event.startswith("prepared")):
            return kind
        if kind != "other" and event.startswith(kind):
            return kind
    return "other"


def commit_timeline_figure(result, point: str = "no crash") -> go.Figure:
    """Actors as rows, time across: lock intervals as bars, events as markers (hover for the text)."""
    fig = go.Figure()
    for actor, (start, end) in commit.lock_intervals(result).items():
        fig.add_scatter(x=[start, end], y=[actor, actor], mode="lines", line={"width": 14, "color": "#FECB52"},
                        name="locks held", legendgroup="locks", showlegend=actor == "inventory",
                        hovertext=f"{actor} holds t1's locks {end - start:.2f} s", hoverinfo="text")
    rows = commit.timeline_rows(result)
    for kind, color, symbol in KINDS:
        pts = [(t, a, e) for t, a, e in rows if _kind(e) == kind and a in ACTORS]
        if pts:
            fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=kind,
                            marker={"color": color, "symbol": symbol, "size": 10}, hovertext=[p[2] for p in pts],
                            hoverinfo="text+x")
    holds = commit.lock_intervals(result)
    longest = max((e - s for s, e in holds.values()), default=0.0)
    fig.update_layout(title=f"2PC, crash at {point}: locks held up to {longest:.2f} s; "
                            f"outcome {result.outcomes['t1']} for the client",
                      xaxis_title="virtual time (s)", yaxis={"categoryorder": "array", "categoryarray": ACTORS[::-1]},
                      legend={"orientation": "h", "y": -0.3}, height=400)
    return fig


def blocking_figure(rows) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=[r.downtime for r in rows], y=[r.max_lock_hold for r in rows], mode="lines+markers",
                    name="2PC: longest lock hold")
    fig.add_scatter(x=[r.downtime for r in rows], y=[0.0 for _ in rows], mode="lines+markers",
                    name="saga: locks across services (none)")
    fig.update_layout(title="2PC blocks: participants that voted yes hold their locks for as long as "
                            "the coordinator is down", xaxis_title="coordinator downtime after the votes (s)",
                      yaxis_title="lock hold time (s)", height=360)
    return fig


def saga_vs_2pc_figure(rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    faults = [r["fault"] for r in rows if r["how"] == "2PC"]
    for how in ("2PC", "saga"):
        sub = [r for r in rows if r["how"] == how]
        fig.add_bar(x=faults, y=[r["lock time"] for r in sub], name=f"{how}: locks held (s)")
        fig.add_bar(x=faults, y=[r["exposure"] for r in sub], name=f"{how}: intermediate state visible (s)")
    fig.update_layout(title="2PC pays in lock time, a saga in exposed intermediate state: "
                            "the same outage costs each of them its downtime", barmode="group",
                      yaxis_title="seconds", height=380)
    return fig


# -- widgets ----------------------------------------------------------------------------------
def pbs_panel_curves(n: int, r: int, w: int, lag_ms: float, *, trials: int = 600, seed: int = 0):
    """The chosen (N, R, W) against R=W=1 and a strict quorum of the same N, at mean delay ``lag_ms``."""
    chosen = Quorum(n, min(r, n), min(w, n))
    configs = [chosen] + [q for q in (Quorum(n, 1, 1), Quorum(n, n // 2 + 1, n // 2 + 1)) if q != chosen]
    return chosen, pbs_curves(configs, PBS_TIMES, mean_latency=lag_ms / 1000, trials=trials, seed=seed)


def pbs_panel_text(chosen: Quorum, curves: dict[str, list[float]], lag_ms: float) -> str:
    ys = curves[str(chosen)]
    after = next((t for t, y in zip(PBS_TIMES, ys) if y <= 0.01), None)
    when = "never above 1 %" if ys[0] <= 0.01 else (f"below 1 % after {after * 1000:g} ms" if after is not None
                                                     else "still above 1 % at 100 ms")
    return (f"{chosen}, mean delay {lag_ms:g} ms: P(stale) right after the write {ys[0]:.3f}; {when}; "
            f"R + W {'>' if chosen.overlapping else '<='} N")


def pbs_panel(seed: int = 0, n: int = 3, r: int = 1, w: int = 1, lag_ms: float = 10.0):
    """Sliders N, R, W and the replica lag over a FigureWidget of P(stale read). Returns the container."""
    import ipywidgets as widgets

    style, layout = {"description_width": "120px"}, widgets.Layout(width="380px")
    sliders = {"n": widgets.IntSlider(value=n, min=1, max=7, description="N replicas"),
               "r": widgets.IntSlider(value=r, min=1, max=n, description="R (read quorum)"),
               "w": widgets.IntSlider(value=w, min=1, max=n, description="W (write quorum)"),
               "lag_ms": widgets.FloatSlider(value=lag_ms, min=1.0, max=50.0, step=1.0,
                                             description="mean delay (ms)")}
    for name, s in sliders.items():
        s.continuous_update, s.style, s.layout = False, style, layout
        s.add_class("pbs-panel-slider")
        s.add_class(f"pbs-panel-{name.replace('_', '-')}")
    chosen, curves = pbs_panel_curves(n, r, w, lag_ms, seed=seed)
    figure = go.FigureWidget(pbs_figure(curves, title="P(stale read) against time since the write: move a slider"))
    summary = widgets.HTML(value=pbs_panel_text(chosen, curves, lag_ms))
    summary.add_class("pbs-panel-summary")
    container = widgets.VBox([widgets.HBox([widgets.VBox([sliders["n"], sliders["r"]]),
                                            widgets.VBox([sliders["w"], sliders["lag_ms"]])]), summary, figure])
    container.add_class("pbs-panel")
    container.figure, container.sliders, container.summary = figure, sliders, summary

    def redraw(_change=None):
        nn = sliders["n"].value
        for k in ("r", "w"):
            sliders[k].max = nn
        chosen, curves = pbs_panel_curves(nn, sliders["r"].value, sliders["w"].value, sliders["lag_ms"].value,
                                          seed=seed)
        fresh = pbs_figure(curves)
        with figure.batch_update():
            figure.data = ()
            for trace in fresh.data:
                figure.add_trace(trace)
        summary.value = pbs_panel_text(chosen, curves, sliders["lag_ms"].value)

    for s in sliders.values():
        s.observe(redraw, names="value")
    container.redraw = redraw
    return container


def timeline_panel(points, *, downtime: float = 2.0, seed: int = 0):
    """A drop-down of crash points over the 2PC timeline of one transaction."""
    import ipywidgets as widgets

    options = ["no crash", *points]
    pick = widgets.Dropdown(options=options, value="coordinator.after_votes", description="crash at",
                            layout=widgets.Layout(width="420px"))
    pick.add_class("timeline-panel-point")

    def make(point):
        result = commit.run({} if point == "no crash" else {point: downtime}, seed=seed)
        return commit_timeline_figure(result, point)

    figure = go.FigureWidget(make(pick.value))
    container = widgets.VBox([pick, figure])
    container.add_class("timeline-panel")

    def redraw(_change=None):
        fresh = make(pick.value)
        with figure.batch_update():
            figure.data = ()
            for trace in fresh.data:
                figure.add_trace(trace)
            figure.layout.title = fresh.layout.title
    pick.observe(redraw, names="value")
    container.figure, container.pick, container.redraw = figure, pick, redraw
    return container
