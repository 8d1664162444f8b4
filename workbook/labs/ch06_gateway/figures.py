"""Chapter 6's figures and widgets (plotly, ipywidgets): each title states its point.

* ``admissions_timeline_figure(binned_by_algorithm)``: admitted and rejected requests per time bin on
  the crafted timeline, one row per algorithm (``ratelimit_runs.binned``);
* ``panel_figure(panel)`` / ``ratelimit_panel(...)``: the rate-limit panel: algorithm, rate
  and burst -> admitted and rejected over time (CSS class ``ratelimit-panel``, summary
  ``ratelimit-panel-summary``, controls ``ratelimit-panel-<name>``);
* ``article_limiter_figure(boundary, concurrency)``: the article's fixed window admitting
  2x across a window edge and over-admitting under concurrency, beside the six algorithms;
* ``route_tester(path, method)``: type a path, see the route and why, ours and the
  article's (CSS class ``route-tester``, result ``route-tester-result``, controls
  ``route-tester-path`` and ``route-tester-method``).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbook.labs.ch06_gateway.gateway_runs import decision_text, route_decision
from workbook.labs.ch06_gateway.ratelimit_runs import panel
from workbook.ratelimit import RATE_LIMIT_ALGORITHMS

OK, BAD, GREY = "#00cc96", "#EF553B", "#8c8c8c"


def admissions_timeline_figure(binned_by_algorithm: dict[str, list[dict]], width: float = 0.25, *,
                               title: str | None = None) -> go.Figure:
    """One row per algorithm: admitted (up) and rejected (down) per bin of ``width`` s."""
    names = list(binned_by_algorithm)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=names)
    for i, name in enumerate(names, start=1):
        bins = binned_by_algorithm[name]
        x = [b["start"] + width / 2 for b in bins]
        fig.add_trace(go.Bar(x=x, y=[b["admitted"] for b in bins], name="admitted", marker_color=OK,
                             showlegend=i == 1, width=width * 0.9), row=i, col=1)
        fig.add_trace(go.Bar(x=x, y=[-b["rejected"] for b in bins], name="rejected", marker_color=BAD,
                             showlegend=i == 1, width=width * 0.9), row=i, col=1)
    fig.update_layout(barmode="relative", height=150 * len(names) + 80,
                      title=title or "The same requests through each algorithm: admitted (up), rejected (down)")
    fig.update_xaxes(title_text="time (s)", row=len(names), col=1)
    return fig


def panel_figure(result: dict, width: float = 0.25) -> go.Figure:
    """Admitted and rejected per bin for one (algorithm, rate, burst) of the panel."""
    bins = result["bins"]
    x = [b["start"] + width / 2 for b in bins]
    fig = go.Figure([go.Bar(x=x, y=[b["admitted"] for b in bins], name="admitted", marker_color=OK, width=width * 0.9),
                     go.Bar(x=x, y=[b["rejected"] for b in bins], name="rejected", marker_color=BAD,
                            width=width * 0.9)])
    fig.update_layout(barmode="stack", height=320, xaxis_title="time (s)", yaxis_title=f"requests per {width:g} s",
                      title=f"{result['algorithm']} at {result['rate']:g}/s, burst {result['burst']}: "
                            f"{result['admitted']} admitted, {result['rejected']} rejected")
    return fig


def panel_summary(result: dict) -> str:
    return (f"{result['algorithm']}, rate {result['rate']:g}/s, burst {result['burst']}: {result['admitted']} "
            f"admitted, {result['rejected']} rejected of {result['admitted'] + result['rejected']}")


def ratelimit_panel(algorithm: str = "token_bucket", rate: float = 10.0, burst: int = 10):
    """A drop-down and two sliders over the crafted timeline; each change recounts and redraws."""
    import ipywidgets as widgets

    style, layout = {"description_width": "90px"}, widgets.Layout(width="380px")
    controls = {
        "algorithm": widgets.Dropdown(options=list(RATE_LIMIT_ALGORITHMS), value=algorithm, description="algorithm"),
        "rate": widgets.FloatSlider(value=rate, min=1, max=40, step=1, description="rate (/s)"),
        "burst": widgets.IntSlider(value=burst, min=1, max=40, step=1, description="burst"),
    }
    for name, c in controls.items():
        c.style, c.layout = style, layout
        if hasattr(c, "continuous_update"):
            c.continuous_update = False
        c.add_class(f"ratelimit-panel-{name}")
    result = panel(algorithm, rate, burst)
    figure = go.FigureWidget(panel_figure(result))
    summary = widgets.HTML(value=panel_summary(result))
    summary.add_class("ratelimit-panel-summary")
    container = widgets.VBox([widgets.HBox(list(controls.values())[:1] + [widgets.VBox(list(controls.values())[1:])]),
                              summary, figure])
    container.add_class("ratelimit-panel")

    def redraw(_change=None):
        r = panel(controls["algorithm"].value, controls["rate"].value, controls["burst"].value)
        fresh = panel_figure(r)
        with figure.batch_update():
            for trace, new in zip(figure.data, fresh.data):
                trace.x, trace.y = new.x, new.y
            figure.layout.title = fresh.layout.title
        summary.value = panel_summary(r)
        return r

    for c in controls.values():
        c.observe(redraw, names="value")
    container.controls, container.summary, container.figure, container.redraw = controls, summary, figure, redraw
    return container


def article_limiter_figure(boundary: dict, concurrency: dict) -> go.Figure:
    """Left: 2 x limit requests within 0.2 s around a window edge; right: 1,000 at once."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        (f"{boundary['requests']} requests within {boundary['span_seconds']:g} s across an edge (limit "
         f"{boundary['limit']}/{boundary['window']} s)"),
        f"{concurrency['requests']} concurrent requests (limit {concurrency['limit']})"))
    for col, data in ((1, boundary), (2, concurrency)):
        names = list(data["admitted"])
        values = [data["admitted"][n] for n in names]
        fig.add_trace(go.Bar(x=names, y=values, text=values, textposition="outside", showlegend=False,
                             marker_color=[BAD if v > data["limit"] else OK for v in values]), row=1, col=col)
        fig.add_hline(y=data["limit"], line_dash="dash", line_color=GREY, row=1, col=col)
    fig.update_layout(height=420, title="Any fixed window admits 2x its limit across an edge; under concurrency only "
                                        "the article's GET-then-INCR admits more than the limit")
    fig.update_yaxes(title_text="admitted", row=1, col=1)
    return fig


def route_tester(path: str = "/api/public/%2e%2e/admin/keys", method: str = "GET"):
    """A text box for the path and a drop-down for the method; the decision redrawn on each change."""
    import ipywidgets as widgets

    controls = {"path": widgets.Text(value=path, description="path", continuous_update=False,
                                     layout=widgets.Layout(width="480px")),
                "method": widgets.Dropdown(options=["GET", "POST", "DELETE"], value=method, description="method")}
    for name, c in controls.items():
        c.add_class(f"route-tester-{name}")
    result = widgets.HTML()
    result.add_class("route-tester-result")

    def decide(_change=None):
        d = route_decision(controls["path"].value or "/", controls["method"].value)
        colour = OK if d["route"] not in ("400", "404", "405") else BAD
        result.value = f"<b style='color:{colour}'>{d['route']}</b> {decision_text(d)}"
        return d

    decide()
    for c in controls.values():
        c.observe(decide, names="value")
    container = widgets.VBox([widgets.HBox(list(controls.values())), result])
    container.add_class("route-tester")
    container.controls, container.result, container.decide = controls, result, decide
    return container


__all__ = ["article_limiter_figure", "panel_figure", "panel_summary", "ratelimit_panel", "route_tester",
           "admissions_timeline_figure"]
