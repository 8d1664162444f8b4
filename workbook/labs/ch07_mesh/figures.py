"""Chapter 7's figures and widgets (plotly, ipywidgets, networkx layout): each title states its point.

* ``outlier_figure``: requests, errors and requests sent to the failing instance per
  second, with Envoy's ejections and returns marked (``traffic_runs.outlier_run``);
* ``canary_figure``: the canary's weight over time for each v2, every analysis marked
  passed or failed with its success rate and p99 (``traffic_runs.canary_run``);
* ``live_change_figure``: v2's share and the aborted share per window, with the moments a
  new configuration was applied (``graph_runs.live_change_run``);
* ``authorization_figure``: the grid of requests, per policy set and target, coloured by
  right or wrong decision (``experiments.authorization_rows``);
* ``mesh_graph_figure``: a Kiali-style graph, callers -> services -> versions, each edge
  labelled with its request rate, error rate and p99 (``graph_runs.edge_stats``);
* ``authz_decision`` / ``authz_tester``: one request decided by a policy set, and a panel
  (CSS class ``authz-tester``, result ``authz-tester-result``, controls
  ``authz-tester-<name>``) that decides the request typed into it;
* ``mesh_panel``: sliders for the v2 weight, the abort and the delay percentages over a
  ``go.FigureWidget`` of the graph (CSS class ``mesh-panel``, summary ``mesh-panel-summary``).
"""

from __future__ import annotations

import networkx as nx
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbook.labs.ch07_mesh.experiments import CALLERS, TARGETS, inventory, mesh_resources
from workbook.labs.ch07_mesh.graph_runs import INGRESS, edge_stats, mesh_run
from workbook.mesh import AuthzRequest, evaluate_authorization, policies_from

OK, BAD, WARN, GREY = "#00cc96", "#EF553B", "#FFA15A", "#8c8c8c"


def ejections(run: dict, end: float) -> list[tuple[float, float, str]]:
    """(start, end, label) of each ejection in ``outlier_run``'s events (open ones end at ``end``)."""
    spans, start, label = [], None, ""
    for e in run["events"]:
        if e["event"] == "eject":
            start, label = e["time"], e["why"].split("(", 1)[-1].rstrip(")")
        elif e["event"] == "uneject" and start is not None:
            spans.append((start, e["time"], label))
            start = None
    if start is not None:
        spans.append((start, end, label))
    return spans


def outlier_figure(run: dict, *, fail=(20.0, 70.0)) -> go.Figure:
    """Per second: requests, 5xx answers, requests to the failing instance; ejections shaded."""
    rows = run["per_second"]
    t = [r["second"] for r in rows]
    fig = go.Figure()
    fig.add_vrect(x0=fail[0], x1=fail[1], fillcolor="#d3d3d3", opacity=0.35, line_width=0,
                  annotation_text="v1-0 answers 500", annotation_position="bottom left")
    for start, end, label in ejections(run, float(len(rows))):
        fig.add_vrect(x0=start, x1=end, fillcolor=BAD, opacity=0.12, line_width=0,
                      annotation_text=f"ejected: {label}", annotation_position="top left")
    fig.add_scatter(x=t, y=[r["requests"] for r in rows], name="requests / s", mode="lines",
                    line={"color": GREY, "shape": "hv"})
    fig.add_scatter(x=t, y=[r["to_failing"] for r in rows], name="sent to order-service-v1-0", mode="lines",
                    line={"color": "#636efa", "shape": "hv"})
    fig.add_scatter(x=t, y=[r["errors"] for r in rows], name="5xx answers", mode="lines",
                    line={"color": BAD, "shape": "hv"})
    fig.update_layout(title=f"Outlier detection ejects the failing instance within a second: "
                            f"{run['errors']} errors in {len(rows)} s<br>"
                            "<sup>5 consecutive 5xx eject it for 30 s, then 60 s (base time x ejections)</sup>",
                      xaxis_title="time (s, virtual)", yaxis_title="requests per second", height=420,
                      yaxis={"range": [0, max(r["requests"] for r in rows) * 1.25]})
    return fig


def canary_figure(runs: list[dict]) -> go.Figure:
    """One panel per v2 variant: the canary's weight over time, each analysis marked (o passed, x failed)."""
    fig = make_subplots(rows=len(runs), cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=[f"v2 {run['v2']}: {run['outcome']}" for run in runs])
    colours = {"healthy": OK, "errors": BAD, "slow": WARN}
    end = max(a["end"] for run in runs for a in run["analyses"]) + 10
    for i, run in enumerate(runs, start=1):
        times = [t for t, _ in run["weights"]]
        weights = [w for _, w in run["weights"]]
        fig.add_scatter(x=times + [end], y=weights + [weights[-1]], mode="lines", row=i, col=1,
                        line={"shape": "hv", "color": colours.get(run["v2"], GREY)},
                        name=f"v2 {run['v2']}: {run['outcome']}")
        fig.add_scatter(
            x=[a["end"] for a in run["analyses"]], y=[a["weight"] for a in run["analyses"]], row=i, col=1,
            mode="markers+text", textposition="top left", textfont={"size": 9},
            marker={"symbol": ["circle" if a["passed"] else "x" for a in run["analyses"]], "size": 10,
                    "color": [OK if a["passed"] else BAD for a in run["analyses"]]},
            text=[f"{a['success_rate']:.1f} %, p99 {a['p99_ms']:.0f} ms" for a in run["analyses"]],
            hoverinfo="text", showlegend=False)
        fig.update_yaxes(range=[-10, 135], title_text="v2 %", row=i, col=1)
    fig.update_xaxes(title_text="time (s, virtual)", row=len(runs), col=1)
    fig.update_layout(title="The canary promotes a healthy v2 in four steps and rolls a faulty one back "
                            "after two failed analyses<br><sup>v2's weight; each analysis: o passed, x failed "
                            "(success rate < 99 % or p99 > 500 ms), with its success rate and p99</sup>",
                      height=170 + 170 * len(runs), showlegend=False, margin={"t": 110})
    return fig


def live_change_figure(live: dict) -> go.Figure:
    """Per window: v2's share and the error share, each configuration change marked."""
    rows = live["windows"]
    width = rows[1]["from_s"] - rows[0]["from_s"] if len(rows) > 1 else 10.0
    x = [r["from_s"] + width / 2 for r in rows]
    fig = go.Figure()
    fig.add_bar(x=x, y=[100 * r["v2_share"] for r in rows], name="share sent to v2 (%)", marker_color="#636efa",
                width=width * 0.4, offset=-width * 0.4)
    fig.add_bar(x=x, y=[100 * r["aborted_503_FI"] / r["requests"] for r in rows],
                name="answered 503 by the fault filter (%)",
                marker_color=BAD, width=width * 0.4, offset=0)
    for at, note in live["applied"]:
        fig.add_vline(x=at, line={"color": GREY, "dash": "dot"}, annotation_text=f"apply: {note}",
                      annotation_position="top right")
    fig.update_layout(title="A configuration applied while traffic runs takes effect at the next request"
                            "<br><sup>orders at 50 per second; share of each 10 s window</sup>",
                      xaxis_title="time (s, virtual)", yaxis_title="% of the window's requests", height=380,
                      yaxis={"range": [0, 70]}, barmode="overlay")
    return fig


_CODES = {("ALLOW", "ALLOW"): 1, ("DENY", "DENY"): 0, ("ALLOW", "DENY"): 3, ("DENY", "ALLOW"): 2}


def _variant(row: dict) -> str:
    header = row["header"].split(": ", 1)[-1].strip("'")
    header = "no hdr" if row["header"] == "(absent)" else (header[:6] or "''")
    return f"{row['method']} {row['path']} {header}"


def authorization_figure(rows_by_version: dict[str, list[dict]]) -> go.Figure:
    """Heatmaps, one per (policy set, target): callers x requests, coloured right/wrong."""
    versions = list(rows_by_version)
    fig = make_subplots(rows=len(versions), cols=len(TARGETS), vertical_spacing=0.24, horizontal_spacing=0.14,
                        subplot_titles=[f"{v}: {t}" for v in versions for t in TARGETS])
    scale = [[0, "#e5e9f0"], [0.25, "#e5e9f0"], [0.25, OK], [0.5, OK], [0.5, "#636efa"], [0.75, "#636efa"],
             [0.75, BAD], [1, BAD]]
    callers = list(CALLERS)
    for i, version in enumerate(versions):
        for j, target in enumerate(TARGETS):
            rows = [r for r in rows_by_version[version] if r["target"] == target]
            variants = list(dict.fromkeys(_variant(r) for r in rows))
            z = [[None] * len(variants) for _ in callers]
            text = [[""] * len(variants) for _ in callers]
            for r in rows:
                y, x = callers.index(r["caller"]), variants.index(_variant(r))
                z[y][x] = _CODES[(r["decision"], r["intended"])]
                text[y][x] = f"{r['decision']} (meant {r['intended']}) by {r['decided_by']}"
            fig.add_heatmap(z=z, x=variants, y=callers, text=text, hoverinfo="x+y+text", zmin=-0.5, zmax=3.5,
                            colorscale=scale, showscale=False, xgap=1, ygap=1, row=i + 1, col=j + 1)
    fig.update_xaxes(tickfont={"size": 8}, tickangle=-60)
    fig.update_layout(title="The article's policies let in far more than meant (red); the corrected ones decide "
                            "every request as intended<br><sup>grey: denied as meant, green: allowed as meant, "
                            "red: allowed but meant to be refused, blue: refused but meant to be allowed</sup>",
                      height=860, margin={"t": 110})
    return fig


# ---- the mesh graph -----------------------------------------------------------------------

def graph_layout(edges: list[dict]) -> dict[str, tuple[float, float]]:
    """Node positions: x the node's generation in the graph (networkx's topological
    generations: ingress, services, versions), y evenly spread with each service's versions
    beside it; deterministic (no random layout), so the figure is the same on every run."""
    g = nx.DiGraph((e["source"], e["target"]) for e in edges)
    layers = [sorted(layer) for layer in nx.topological_generations(g)]
    order = {n: i for i, n in enumerate(layers[-1])}
    for depth in range(len(layers) - 2, -1, -1):  # a parent sits where its first child is
        layers[depth].sort(key=lambda n: min((order.get(c, 0) for c in g.successors(n)), default=0))
        order = {n: i for i, n in enumerate(layers[depth])}
    pos = {}
    for x, layer in enumerate(layers):
        for i, node in enumerate(layer):
            pos[node] = (float(x), 0.0 if len(layer) == 1 else round(1.0 - 2.0 * i / (len(layer) - 1), 4))
    return dict(sorted(pos.items()))


def _edge_colour(error_rate: float) -> str:
    return OK if error_rate < 0.01 else (WARN if error_rate < 0.05 else BAD)


def edge_label(e: dict) -> str:
    return f"{e['rps']:.1f} rps, {100 * e['error_rate']:.1f} % err, p99 {e['p99_ms']:.0f} ms"


def mesh_graph_figure(edges: list[dict], *, title: str | None = None) -> go.Figure:
    """Kiali's versioned-app graph: edge width ~ rate, colour ~ error rate, label rate / errors / p99."""
    pos = graph_layout(edges)
    top = max(y for _, y in pos.values())
    fig = go.Figure()
    for e in edges:
        (x0, y0), (x1, y1) = pos[e["source"]], pos[e["target"]]
        if x1 - x0 == 1:  # neighbouring layers: a straight edge
            xs, ys = [x0, x1], [y0, y1]
        else:  # an edge skipping layers arcs over the graph (a quadratic Bezier curve)
            cx, cy = (x0 + x1) / 2, 2 * (top + 0.45) - (y0 + y1) / 2  # its apex 0.45 above the top node
            ts = [i / 20 for i in range(21)]
            xs = [round((1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t ** 2 * x1, 4) for t in ts]
            ys = [round((1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t ** 2 * y1, 4) for t in ts]
        fig.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                        line={"width": 1 + 6 * min(e["rps"], 20) / 20, "color": _edge_colour(e["error_rate"])})
        fig.add_annotation(x=xs[len(xs) // 2] if len(xs) > 2 else (x0 + x1) / 2,
                           y=ys[len(ys) // 2] if len(ys) > 2 else (y0 + y1) / 2, text=edge_label(e),
                           showarrow=False, font={"size": 10}, bgcolor="rgba(255,255,255,0.85)")
    names = list(pos)
    fig.add_scatter(x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text", text=names,
                    textposition="bottom center", hoverinfo="text", showlegend=False,
                    marker={"size": 22, "symbol": ["diamond" if n == INGRESS else ("square" if " " in n else "circle")
                                                   for n in names], "color": "#636efa"})
    worst = max(edges, key=lambda e: (e["error_rate"], e["p99_ms"]))
    fig.update_layout(
        title=title or (f"The mesh as the sidecars see it: worst edge {worst['source']} -> {worst['target']} "
                        f"({edge_label(worst)})<br><sup>edge width ~ requests per second; green < 1 % errors, "
                        "orange < 5 %, red above</sup>"),
        xaxis={"visible": False, "range": [-0.4, max(x for x, _ in pos.values()) + 0.4]},
        yaxis={"visible": False}, height=480,
        margin={"l": 10, "r": 10})
    return fig


def mesh_summary(edges: list[dict], settings: dict) -> str:
    orders = next(e for e in edges if e["target"] == "order-service")
    v2 = next((e for e in edges if e["target"] == "order-service v2"), None)
    return (f"v2 weight {settings['v2_weight']} %, abort {settings['abort_percent']:g} %, delay "
            f"{settings['delay_percent']:g} %: orders {orders['rps']:.1f} rps, "
            f"{100 * orders['error_rate']:.1f} % errors, p99 {orders['p99_ms']:.0f} ms; v2 receives "
            f"{v2['rps'] if v2 else 0:.1f} rps")


def mesh_panel(seed: int = 0, *, v2_weight: int = 20, abort_percent: float = 0.0, delay_percent: float = 0.0,
               duration: float = 30.0):
    """Sliders over the graph: each change re-runs ``mesh_run`` (virtual time) and redraws the edges."""
    import ipywidgets as widgets

    style, layout = {"description_width": "160px"}, widgets.Layout(width="420px")
    controls = {
        "v2_weight": widgets.IntSlider(value=v2_weight, min=0, max=100, step=5, description="orders v2 weight (%)"),
        "abort_percent": widgets.FloatSlider(value=abort_percent, min=0, max=50, step=1,
                                             description="abort 503 (%)"),
        "delay_percent": widgets.FloatSlider(value=delay_percent, min=0, max=50, step=1,
                                             description="delay 0.5 s (%)"),
    }
    for name, c in controls.items():
        c.continuous_update, c.style, c.layout = False, style, layout
        c.add_class(f"mesh-panel-{name.replace('_', '-')}")

    def compute():
        run = mesh_run(seed, duration=duration, **{k: c.value for k, c in controls.items()})
        edges = edge_stats(run)
        return edges, mesh_summary(edges, run["settings"])

    edges, text = compute()
    figure = go.FigureWidget(mesh_graph_figure(edges, title="The mesh graph: move a slider"))
    figure.layout.width = 1150  # five columns of nodes: the edge labels need the room
    summary = widgets.HTML(value=text)
    summary.add_class("mesh-panel-summary")
    container = widgets.VBox([widgets.VBox(list(controls.values())), summary, figure])
    container.add_class("mesh-panel")
    container.figure, container.controls, container.summary = figure, controls, summary

    def redraw(_change=None):
        edges, text = compute()
        fresh = mesh_graph_figure(edges, title="The mesh graph: move a slider")
        with figure.batch_update():
            figure.data = ()
            for trace in fresh.data:
                figure.add_trace(trace)
            figure.layout.annotations = fresh.layout.annotations
        summary.value = text

    for c in controls.values():
        c.observe(redraw, names="value")
    container.redraw = redraw
    return container


# ---- the authorization tester ---------------------------------------------------------------

def authz_decision(version: str, target: str, principal: str | None, method: str, path: str,
                   header: str = "", value: str | None = None) -> dict:
    """Decide one request to ``target`` under the ``version`` policies; who decided and why."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {sorted(TARGETS)}")
    headers = {header: value} if header and value is not None else {}
    request = AuthzRequest(method, path, host=target, port=8080, headers=headers, principal=principal or None)
    decision = evaluate_authorization(policies_from(mesh_resources(version)), request,
                                      inventory().workload(TARGETS[target].workload))
    return {"decision": "ALLOW" if decision.allowed else "DENY", "action": decision.action,
            "policy": decision.policy or "-", "rule": "-" if decision.rule is None else decision.rule,
            "reason": decision.reason}


def authz_text(d: dict) -> str:
    """One line: the decision, then the policy and rule that decided (or "by default") and why."""
    if d["policy"] == "-":
        return f"{d['decision']}: by default, no rule decided ({d['reason']})"
    return f"{d['decision']}: {d['action']} policy {d['policy']}, rule {d['rule']} ({d['reason']})"


def authz_tester(version: str = "article", target: str = "user-service", caller: str = "payment-service",
                 method: str = "DELETE", path: str = "/admin/users", header: str = "authorization",
                 value: str = "Bearer x"):
    """Drop-downs and text boxes for one request; the decision redrawn on every change."""
    import ipywidgets as widgets

    style, layout = {"description_width": "110px"}, widgets.Layout(width="380px")
    controls = {
        "version": widgets.Dropdown(options=["article", "corrected"], value=version, description="policies"),
        "target": widgets.Dropdown(options=list(TARGETS), value=target, description="workload"),
        "caller": widgets.Dropdown(options=list(CALLERS), value=caller, description="principal"),
        "method": widgets.Dropdown(options=["GET", "POST", "PUT", "DELETE"], value=method, description="method"),
        "path": widgets.Text(value=path, description="path", continuous_update=False),
        "header": widgets.Text(value=header, description="header", continuous_update=False),
        "value": widgets.Text(value=value, description="header value", continuous_update=False),
    }
    for name, c in controls.items():
        c.style, c.layout = style, layout
        c.add_class(f"authz-tester-{name}")
    result = widgets.HTML()
    result.add_class("authz-tester-result")

    def decide(_change=None):
        v = {k: c.value for k, c in controls.items()}
        d = authz_decision(v["version"], v["target"], CALLERS[v["caller"]], v["method"], v["path"] or "/",
                           v["header"].strip().lower(), v["value"])
        colour = OK if d["decision"] == "ALLOW" else BAD
        result.value = f"<b style='color:{colour}'>{d['decision']}</b> {authz_text(d)[len(d['decision']) + 2:]}"
        return d

    decide()
    for c in controls.values():
        c.observe(decide, names="value")
    container = widgets.VBox([widgets.HBox([widgets.VBox([controls[k] for k in ("version", "target", "caller",
                                                                                 "method")]),
                                            widgets.VBox([controls[k] for k in ("path", "header", "value")])]),
                              result])
    container.add_class("authz-tester")
    container.controls, container.result, container.decide = controls, result, decide
    return container
