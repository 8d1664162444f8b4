"""Chapter 8's figures and widgets (plotly, ipywidgets): each title states the figure's point.

* ``quantile_error_figure(rows)``: ``histogram_quantile``'s estimate against the true
  quantile, error in % per quantile, one line per bucket layout (``experiments.quantile_error``).
* ``quantile_panel(seed)``: sliders that build the second layout (first bound, factor,
  count: exponential bounds, as the Go client's ``prometheus.ExponentialBuckets``) over a
  ``go.FigureWidget`` of the errors.
* ``alert_timeline_figure(result)``: the error ratio, the article's pages and a ``for:``
  rule's state (inactive, pending, firing) on one series (``experiments.naive_versus_for``).
* ``slo_figure(rows)``: detection time, reset time, false pages and missed incidents per
  SRE Workbook approach (``experiments.slo_table``).
* ``waterfall_figure(rows, path)``: one trace's spans as bars, the critical path drawn over them.
* ``dependency_figure(graph, seed)``: the service graph in layers (callers left of callees; a
  graph with cycles: ``networkx`` spring layout, seeded).
* ``sampling_figure(rows)``: share of error traces kept by head and tail sampling per budget.
* ``dashboard_figure(points)`` and ``dashboard_panel(seed)``: the live RED dashboard of
  ``dashboard.DashboardSim``; the panel's container has the CSS class ``dashboard-panel``,
  its summary ``dashboard-panel-summary``, its controls ``dashboard-panel-<name>`` (what
  the browser test looks for).
"""

from __future__ import annotations

import math

import networkx as nx
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbook.labs.ch08_observability.dashboard import FAULTS, DashboardSim
from workbook.labs.ch08_observability.experiments import quantile_error

__all__ = ["quantile_error_figure", "exponential_buckets", "quantile_panel", "quantile_summary",
           "alert_timeline_figure", "slo_figure", "waterfall_figure", "dependency_figure", "sampling_figure",
           "dashboard_figure", "dashboard_panel", "dashboard_summary", "QUANTILES"]

QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999)
STATE_LEVEL = {"inactive": 0, "pending": 1, "firing": 2}


def _title(text: str, width: int = 95) -> str:
    """Break a long title into lines of at most ``width`` characters (plotly does not wrap titles)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join(lines + [line])


def exponential_buckets(start_ms: float, factor: float, count: int) -> tuple[float, ...]:
    """``count`` bounds ``start, start * factor, ...`` in seconds (``start`` in ms), as the Go client's
    ``prometheus.ExponentialBuckets``; Python's ``prometheus_client`` takes the bounds as a list."""
    return tuple(round(start_ms / 1000 * factor ** i, 6) for i in range(int(count)))


def quantile_error_figure(rows: list[dict]) -> go.Figure:
    """Error (%) of ``histogram_quantile`` against the true quantile, per layout."""
    fig = go.Figure()
    for layout in dict.fromkeys(r["layout"] for r in rows):
        pts = [r for r in rows if r["layout"] == layout]
        fig.add_scatter(x=[f"p{r['q'] * 100:g}" for r in pts], y=[r["error_pct"] for r in pts], name=layout,
                        mode="lines+markers")
    fig.add_hline(y=0, line={"color": "#888", "width": 1})
    title = _title("histogram_quantile is exact only at bucket bounds: inside a wide bucket it "
                   "interpolates linearly, and the error grows with the bucket's width")
    fig.update_layout(title=title, xaxis_title="quantile", yaxis_title="estimate - true (% of true)", height=400)
    return fig


def quantile_summary(rows: list[dict]) -> str:
    return "; ".join(f"{r['layout']} p{r['q'] * 100:g}: {r['error_pct']:+.1f}%" for r in rows
                     if r["q"] in (0.5, 0.9, 0.99))


def quantile_panel(seed: int = 0, reference: tuple | None = None):
    """Sliders building a second bucket layout, compared with the service's stated one."""
    import ipywidgets as w

    from workbook.observability import LATENCY_BUCKETS

    reference = reference or LATENCY_BUCKETS
    start = w.FloatLogSlider(value=100, base=10, min=0, max=3, step=0.1, description="first bound (ms)",
                             continuous_update=False)
    factor = w.FloatSlider(value=5.0, min=1.2, max=10.0, step=0.1, description="factor", continuous_update=False)
    count = w.IntSlider(value=4, min=2, max=20, description="buckets", continuous_update=False)
    summary = w.HTML()

    def rows():
        layouts = {"service (stated)": reference,
                   "yours": exponential_buckets(start.value, factor.value, count.value)}
        return quantile_error(layouts, seed=seed, qs=QUANTILES)

    fig = go.FigureWidget(quantile_error_figure(rows()))

    def redraw(_=None):
        data = rows()
        bounds = ", ".join(f"{b * 1000:g}" for b in exponential_buckets(start.value, factor.value, count.value))
        with fig.batch_update():
            fig.data[1].y = [r["error_pct"] for r in data if r["layout"] == "yours"]
        summary.value = f"<b>your bounds (ms)</b>: {bounds}<br>{quantile_summary(data)}"

    for control in (start, factor, count):
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([start, factor, count]), fig, summary])


def alert_timeline_figure(result: dict, threshold: float = 0.05) -> go.Figure:
    """Error ratio with incident and spikes shaded, the article's pages, the ``for:`` rule's state."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    sc = result["scenario"]
    start, end, _ = sc["incident"]
    fig.add_vrect(x0=start / 60, x1=end / 60, fillcolor="#EF553B", opacity=0.12, line_width=0,
                  annotation_text="incident", annotation_position="top left")
    for s, e, _ in sc["spikes"]:
        fig.add_vrect(x0=s / 60, x1=e / 60 + 0.5, fillcolor="#FFA15A", opacity=0.25, line_width=0)
    ts = [t / 60 for t, _ in result["error_ratio"]]
    fig.add_scatter(x=ts, y=[round(v, 5) for _, v in result["error_ratio"]], name="error ratio (rate 1m)",
                    mode="lines", line={"color": "#2a3f5f", "width": 1}, row=1, col=1)
    fig.add_hline(y=threshold, line={"dash": "dot", "color": "#888"}, row=1, col=1)
    fig.add_scatter(x=[t / 60 for t in result["naive_pages"]], y=[threshold * 1.6] * len(result["naive_pages"]),
                    mode="markers", marker={"symbol": "x", "size": 10, "color": "#EF553B"},
                    name="article's manager pages", row=1, col=1)
    fig.add_scatter(x=[t / 60 for t in result["prometheus_pages"]],
                    y=[threshold * 2.2] * len(result["prometheus_pages"]), mode="markers",
                    marker={"symbol": "star", "size": 13, "color": "#00cc96"}, name="for: 5m rule pages",
                    row=1, col=1)
    fig.add_scatter(x=[t / 60 for t, _ in result["states"]], y=[STATE_LEVEL[s] for _, s in result["states"]],
                    mode="lines", line={"shape": "hv", "color": "#ab63fa"}, name="for: 5m rule state",
                    row=2, col=1)
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=["inactive", "pending", "firing"], row=2, col=1)
    fig.update_yaxes(title_text="error ratio", row=1, col=1)
    fig.update_xaxes(title_text="time (min)", row=2, col=1)
    title = _title("value > threshold pages on every spike and re-pages every 5 min; for: 5m waits "
                   "out the spikes (pending) and pages once for the incident")
    fig.update_layout(title=title, height=480)
    return fig


SLO_PANELS = (("detection_median_min", "median detection (min)"), ("reset_median_min", "median reset (min)"),
              ("false_pages", "false pages"), ("missed", "missed incidents"))


def slo_figure(rows: list[dict]) -> go.Figure:
    """Four bars per approach: what each way of alerting on an SLO costs."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in SLO_PANELS], vertical_spacing=0.16)
    names = [f"({r['approach'].split(' ', 1)[0]})" for r in rows]
    for k, (key, _) in enumerate(SLO_PANELS):
        values = [r[key] for r in rows]
        fig.add_bar(x=names, y=[max(v, 0.5) if key == "reset_median_min" else v for v in values],
                    text=[f"{v:g}" for v in values], textposition="outside", cliponaxis=False,
                    row=k // 2 + 1, col=k % 2 + 1, showlegend=False,
                    marker_color=["#00cc96" if r["approach"].startswith("6") else "#636efa" for r in rows],
                    hovertext=[r["approach"] for r in rows])
    fig.update_yaxes(type="log", row=1, col=2)  # resets range from minutes to days; 0 drawn at 0.5
    fig.update_xaxes(type="category")
    title = _title("Only multiwindow multi-burn-rate (6) combines a fast page, a short reset, no "
                   "false pages and no missed incidents (x: approach as numbered in the table)")
    fig.update_layout(title=title, height=560, margin={"t": 110})
    return fig


def waterfall_figure(rows: list[dict], path: list[dict] | None = None, *, title: str | None = None) -> go.Figure:
    """One bar per span (tree order, top to bottom); the critical path's segments over them in red."""
    labels = [f"{'  ' * r['depth']}{r['service']}: {r['name']} ({r['kind'].lower()})" for r in rows]
    fig = go.Figure()
    fig.add_bar(y=labels, x=[max(r["duration_ms"], 0.05) for r in rows], base=[r["start_ms"] for r in rows],
                orientation="h", name="span", marker_color=["#EF553B" if r["status"] == "ERROR" else "#9db4d8"
                                                             for r in rows],
                hovertext=[f"{r['duration_ms']} ms" for r in rows])
    if path:
        index = {r["span_id"]: labels[i] for i, r in enumerate(rows)}
        fig.add_bar(y=[index[s["span_id"]] for s in path], x=[max(s["duration_ms"], 0.05) for s in path],
                    base=[s["start_ms"] for s in path], orientation="h", width=0.35, name="critical path",
                    marker_color="#d62728")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(barmode="overlay", height=120 + 24 * len(rows), xaxis_title="ms since the request began",
                      title=_title(title or "One checkout through five services and the broker: the stock lookup "
                                            "is the critical path (red); shipping runs after the response and "
                                            "delays nobody"), margin={"t": 90})
    return fig


def dependency_figure(graph: nx.DiGraph, seed: int = 0) -> go.Figure:
    """Services as nodes, callers left of callees, calls and error rate on each edge.

    A call graph without cycles is laid out in layers (``networkx.topological_generations``:
    the entry point left, each callee one layer right of its furthest caller); one with
    cycles falls back to ``spring_layout(seed=seed)``. Either way the same graph is drawn the
    same way every time.
    """
    layered = graph.copy()
    if nx.is_directed_acyclic_graph(layered):
        for depth, layer in enumerate(nx.topological_generations(layered)):
            for node in layer:
                layered.nodes[node]["layer"] = depth
        pos = nx.multipartite_layout(layered, subset_key="layer")
    else:
        pos = nx.spring_layout(graph, seed=seed)
    pos = {n: (round(float(x), 4), round(float(y), 4)) for n, (x, y) in pos.items()}
    fig = go.Figure()
    for a, b, d in sorted(graph.edges(data=True)):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        color = "#EF553B" if d["error_rate"] > 0 else "#636efa"
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", showarrow=True,
                           arrowhead=3, arrowsize=1.5, arrowwidth=1.5, arrowcolor=color, standoff=18,
                           startstandoff=18)
        fig.add_annotation(x=round((x0 + x1) / 2, 4), y=round((y0 + y1) / 2, 4), showarrow=False, yshift=10,
                           text=f"{d['calls']} calls, {d['error_rate'] * 100:.1f}% errors",
                           font={"size": 10, "color": color}, bgcolor="rgba(255,255,255,0.7)")
    nodes = sorted(graph.nodes)
    fig.add_scatter(x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], text=nodes, mode="markers+text",
                    textposition="bottom center", marker={"size": 26, "color": "#ab63fa"}, showlegend=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    title = _title("Derived from spans alone: who calls whom, how often, and where the errors are "
                   "(payments' failures surface on gateway -> orders too)")
    fig.update_layout(title=title, height=460, margin={"t": 90})
    return fig


def sampling_figure(rows: list[dict]) -> go.Figure:
    """Share of error traces kept against the share of traces kept (the storage budget)."""
    fig = go.Figure()
    x = [r["ratio"] for r in rows]
    fig.add_scatter(x=x, y=[r["head_error_recall"] for r in rows], name="head (ratio, decided at the root)",
                    mode="lines+markers")
    fig.add_scatter(x=x, y=[r["tail_error_recall"] for r in rows], name="tail (errors and slow first)",
                    mode="lines+markers")
    fig.update_xaxes(type="log", title_text="budget: share of traces kept")
    fig.update_yaxes(title_text="share of error traces kept", range=[0, 1.05])
    title = _title("At the same budget, tail sampling keeps every error trace the budget can hold; "
                   "head sampling keeps about its ratio of them")
    fig.update_layout(title=title, height=400)
    return fig


def dashboard_figure(points: list[dict], *, height: int = 560) -> go.Figure:
    """Rate, error ratio, p90 latency and the alert's state against virtual time."""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=["requests / s", "error ratio", "p90 latency (ms)", "HighErrorRatio"])
    ts = [p["t"] / 60 for p in points]
    k = 0
    while k < len(points):  # shade the faults' spans in every row (a row is one 15 s step ending at t)
        if points[k]["fault"] == "none":
            k += 1
            continue
        j = k
        while j + 1 < len(points) and points[j + 1]["fault"] == points[k]["fault"]:
            j += 1
        fig.add_vrect(x0=(points[k]["t"] - 15) / 60, x1=points[j]["t"] / 60, fillcolor="#EF553B", opacity=0.1,
                      line_width=0, row="all", col=1, exclude_empty_subplots=False)
        k = j + 1
    fig.add_scatter(x=ts, y=[_num(p["rate"]) for p in points], mode="lines", row=1, col=1, name="rate")
    fig.add_scatter(x=ts, y=[_num(p["error_ratio"]) for p in points], mode="lines", row=2, col=1, name="errors")
    fig.add_hline(y=0.05, line={"dash": "dot", "color": "#888"}, row=2, col=1)
    fig.add_scatter(x=ts, y=[_num(p["p90"], 1000) for p in points], mode="lines", row=3, col=1, name="p90")
    fig.add_scatter(x=ts, y=[STATE_LEVEL[p["HighErrorRatio"]] for p in points], mode="lines", row=4, col=1,
                    line={"shape": "hv"}, name="alert")
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=["inactive", "pending", "firing"], row=4, col=1)
    fig.update_xaxes(title_text="virtual time (min)", row=4, col=1)
    title = _title("A fault shows in the error ratio at once; the alert is pending for its for: 1m, "
                   "then fires, and resolves when the 1m rate drops back (fault shaded)")
    fig.update_layout(title=title, height=height, margin={"t": 100}, showlegend=False)
    return fig


def _num(value, scale=1.0):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value * scale, 4)


def dashboard_summary(sim: DashboardSim) -> str:
    last = sim.points[-1] if sim.points else None
    if last is None:
        return "t=0 s: no scrape yet"
    changes = "; ".join(f"{c['alert']} {c['to']} at {c['t']:g} s" for c in sim.transitions) or "no alert yet"
    return (f"t={last['t']:g} s fault={last['fault']} rate={_num(last['rate'])}/s "
            f"error ratio={_num(last['error_ratio'])} p90={_num(last['p90'], 1000)} ms | "
            f"HighErrorRatio={last['HighErrorRatio']} SlowP90={last['SlowP90']} | {changes}")


def dashboard_panel(seed: int = 0, *, rate: float = 20.0):
    """The live dashboard: fault buttons, a step button and a player that runs the load 15 s per tick."""
    import ipywidgets as w

    sim = DashboardSim(seed, rate=rate)
    fault = w.ToggleButtons(options=list(FAULTS), value="none", description="fault")
    step = w.Button(description="run 1 min")
    play = w.Play(value=0, min=0, max=240, interval=600, description="run")
    summary = w.HTML()
    fig = go.FigureWidget(dashboard_figure([], height=520))
    fig.update_layout(title="checkout's RED metrics and its alert, live (virtual time)")

    def redraw():
        pts = sim.points
        ts = [p["t"] / 60 for p in pts]
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y = ts, [_num(p["rate"]) for p in pts]
            fig.data[1].x, fig.data[1].y = ts, [_num(p["error_ratio"]) for p in pts]
            fig.data[2].x, fig.data[2].y = ts, [_num(p["p90"], 1000) for p in pts]
            fig.data[3].x, fig.data[3].y = ts, [STATE_LEVEL[p["HighErrorRatio"]] for p in pts]
        summary.value = dashboard_summary(sim)

    def on_fault(change):
        sim.set_fault(change["new"])
        summary.value = dashboard_summary(sim) + f" | next steps: fault={change['new']}"

    def on_step(_):
        sim.advance(60)
        redraw()

    def on_play(change):
        if change["new"] > change["old"]:
            sim.advance(15)
            redraw()

    fault.observe(on_fault, names="value")
    step.on_click(on_step)
    play.observe(on_play, names="value")
    for name, control in (("fault", fault), ("step", step), ("play", play), ("summary", summary)):
        control.add_class(f"dashboard-panel-{name}")
    redraw()
    box = w.VBox([w.HBox([fault, step, play]), fig, summary])
    box.add_class("dashboard-panel")
    box.sim = sim
    return box
