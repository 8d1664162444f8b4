"""Figures and the explorer widget for chapter 0 (the tour)."""

from __future__ import annotations

import networkx as nx
import plotly.graph_objects as go

from workbook.labs.ch00_tour.experiments import fanout_where_quantile_stalls
from workbook.shop.architecture import Architecture

LAYER = {"client": 0, "edge": 1, "service": 2, "database": 3, "cache": 3, "infrastructure": 4}
KIND_COLOUR = {
    "client": "#8c8c8c", "edge": "#6a51a3", "service": "#2171b5",
    "database": "#238b45", "cache": "#41ab5d", "infrastructure": "#d94801",
}
MODE_DASH = {"sync": "solid", "async": "dash", "data": "dot"}


def layout(arch: Architecture, kind: str = "layered", seed: int = 0) -> dict[str, tuple[float, float]]:
    """Node positions, rounded so figures compare equal across runs and machines.

    ``layered`` puts clients on top and infrastructure at the bottom (see
    ``layered_positions``); ``spring`` is networkx's force-directed layout, seeded with ``seed``.
    """
    g = arch.graph
    if kind == "layered":
        pos = layered_positions(arch)
    elif kind == "spring":
        pos = nx.spring_layout(g, seed=seed)
    else:
        raise ValueError(f"layout kind {kind!r}: expected 'layered' or 'spring'")
    return {n: (round(float(x), 4), round(float(y), 4)) for n, (x, y) in pos.items()}


def layered_positions(arch: Architecture) -> dict[str, tuple[float, float]]:
    """Clients on top, then the edge, services, their stores, infrastructure at the bottom.

    Within a layer nodes keep the file's order, except that a database or cache sits
    under the first service that uses it, so each service's database is right below it.
    """
    g = arch.graph
    layers: dict[int, list[str]] = {}
    for node, data in g.nodes(data=True):
        layers.setdefault(LAYER[data["kind"]], []).append(node)
    services = layers.get(LAYER["service"], [])

    def owner_rank(store):
        users = [services.index(u) for u in g.predecessors(store) if u in services]
        return (min(users) if users else len(services), 0 if g.nodes[store]["kind"] == "database" else 1)

    if LAYER["database"] in layers:
        layers[LAYER["database"]].sort(key=owner_rank)
    width = max(len(nodes) for nodes in layers.values())
    pos = {}
    for layer, nodes in layers.items():
        step = width / len(nodes)
        for i, node in enumerate(nodes):
            pos[node] = ((i + 0.5) * step / width, -layer / max(layers))
    return pos


def highlight_roles(arch: Architecture, selected: str | None) -> dict[str, str]:
    """Role of each node relative to ``selected``: selected, callee, caller, both or other."""
    if selected is None:
        return {n: "other" for n in arch.graph}
    callees, callers = set(arch.callees(selected)), set(arch.callers(selected))
    roles = {}
    for n in arch.graph:
        if n == selected:
            roles[n] = "selected"
        elif n in callees and n in callers:
            roles[n] = "both"
        elif n in callees:
            roles[n] = "callee"
        elif n in callers:
            roles[n] = "caller"
        else:
            roles[n] = "other"
    return roles


ROLE_COLOUR = {"selected": "#e41a1c", "callee": "#1b9e77", "caller": "#ff7f00", "both": "#984ea3"}


def _arrow(pos, a: str, b: str, colour: str, width: float) -> dict:
    """An arrowhead annotation on edge ``a -> b``, ending at ``b``'s marker (direction of the call)."""
    (xa, ya), (xb, yb) = pos[a], pos[b]
    return {"x": xb, "y": yb, "ax": round(xa + 0.7 * (xb - xa), 4), "ay": round(ya + 0.7 * (yb - ya), 4),
            "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "showarrow": True, "text": "",
            "arrowhead": 2, "arrowsize": 1.1, "arrowwidth": width, "arrowcolor": colour, "standoff": 10}


def architecture_figure(arch: Architecture, selected: str | None = None, *, kind: str = "layered", seed: int = 0) -> go.Figure:
    """The system as a directed graph: arrows point from caller to callee; line style is the
    edge's mode, node colour its kind (legend). With ``selected``, what it calls (green) and
    what calls it (orange) are highlighted."""
    pos = layout(arch, kind, seed)
    roles = highlight_roles(arch, selected)
    fig = go.Figure()
    arrows = []
    for mode in ("sync", "async", "data"):
        for active in (False, True):
            xs, ys = [], []
            colour, width = ("#e41a1c", 3) if active else ("#9e9e9e", 1)
            for a, b, d in arch.graph.edges(data=True):
                if d["mode"] != mode or (selected in (a, b)) != active:
                    continue
                xs += [pos[a][0], pos[b][0], None]
                ys += [pos[a][1], pos[b][1], None]
                arrows.append(_arrow(pos, a, b, colour, 2 if active else 1))
            # every trace is always present (maybe empty), so the explorer can update the
            # figure trace by trace whatever is selected
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", hoverinfo="skip", legendgroup="edges", legendgrouptitle_text="edges",
                name=f"{mode}{' (selected)' if active else ''}", showlegend=not active,
                line=dict(dash=MODE_DASH[mode], width=width, color=colour),
            ))
    for node_kind, colour in KIND_COLOUR.items():  # legend entries for node kinds (no points)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=node_kind, legendgroup="nodes",
                                 legendgrouptitle_text="nodes", marker=dict(size=12, color=colour)))
    nodes = list(arch.graph.nodes(data=True))
    colours = [ROLE_COLOUR.get(roles[n], KIND_COLOUR[d["kind"]]) for n, d in nodes]
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n, _ in nodes], y=[pos[n][1] for n, _ in nodes],
        mode="markers+text", text=[n for n, _ in nodes], textposition="top center",
        hovertext=[f"{d['label']} ({d['kind']}{', team ' + d['team'] if d['team'] else ''})" for _, d in nodes],
        hoverinfo="text", name="nodes", showlegend=False,
        marker=dict(size=[22 if roles[n] != "other" else 16 for n, _ in nodes], color=colours,
                    line=dict(width=1, color="#333")),
    ))
    title = (f"{arch.name}: arrows point from caller to callee; solid = call, dashed = message, dotted = data"
             if selected is None else f"{arch.name}: {selected} calls green, is called by orange (purple: both)")
    fig.update_layout(title=title, height=600, margin=dict(l=10, r=10, t=50, b=10), annotations=arrows,
                      xaxis=dict(visible=False), yaxis=dict(visible=False), legend=dict(orientation="h"))
    return fig


def describe_architecture(arch: Architecture) -> str:
    """The numbers behind the architecture figure: nodes by kind, edges by mode, degrading edges."""
    kinds: dict[str, int] = {}
    for _, d in arch.graph.nodes(data=True):
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
    modes: dict[str, int] = {}
    for _, _, d in arch.graph.edges(data=True):
        modes[d["mode"]] = modes.get(d["mode"], 0) + 1
    degrading = sum(1 for _, _, d in arch.graph.edges(data=True) if d.get("degrades"))
    return (f"{arch.name}: {arch.graph.number_of_nodes()} nodes ("
            + ", ".join(f"{kinds[k]} {k}" for k in KIND_COLOUR if k in kinds) + f"), {arch.graph.number_of_edges()} "
            "edges (" + ", ".join(f"{modes[m]} {m}" for m in MODE_DASH if m in modes)
            + f"); {degrading} edges only degrade when their target fails")


def architecture_explorer(arch: Architecture, initial: str = "order-service"):
    """A dropdown of services and a live figure highlighting the chosen one's callers and callees."""
    import ipywidgets as widgets

    choices = sorted(arch.graph)
    figure = go.FigureWidget(architecture_figure(arch, initial))
    picker = widgets.Dropdown(options=choices, value=initial, description="node")
    summary = widgets.HTML()

    def redraw(change=None):
        node = picker.value
        fresh = architecture_figure(arch, node)
        with figure.batch_update():
            for old, new in zip(figure.data, fresh.data, strict=True):
                old.update(new.to_plotly_json())
            figure.layout.title = fresh.layout.title
            figure.layout.annotations = fresh.layout.annotations
        summary.value = (f"<b>{node}</b> calls: {', '.join(arch.callees(node)) or 'nothing'}<br>"
                         f"called by: {', '.join(arch.callers(node)) or 'nothing'}<br>"
                         f"blast radius (nodes waiting on it synchronously): {len(arch.blast_radius(node))} nodes; "
                         f"degraded, not down: {', '.join(arch.degraded_by(node)) or 'nothing'}")

    picker.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([picker, summary, figure])
    box.add_class("architecture-explorer")
    return box


def tail_figure(results, p_slow: float | None = None) -> go.Figure:
    """p50, p90 and p99 of the end-to-end latency against fan-out k (log-log).

    With ``p_slow`` (bimodal backends), a dotted vertical line marks the fan-out from which
    theory says each percentile is a stall, and the title says so.
    """
    ks = [r.k for r in results]
    fig = go.Figure()
    for name in ("p50", "p90", "p99"):
        fig.add_trace(go.Scatter(x=ks, y=[getattr(r, f"{name}_ms") for r in results], mode="lines+markers", name=name))
    title = "The tail at scale: a request fanning out to k backends is as slow as the slowest"
    if p_slow is not None and 0 < p_slow < 1:
        cliffs = {name: fanout_where_quantile_stalls(q, p_slow) for name, q in (("p99", 0.99), ("p90", 0.9),
                                                                                 ("p50", 0.5))}
        for k, name in ((k, name) for name, k in cliffs.items() if min(ks) <= k <= max(ks)):
            fig.add_vline(x=k, line=dict(dash="dot", color="#888", width=1),
                          annotation_text=f"{name} stalls", annotation_position="top")
        title = (f"Each percentile jumps to the stall at its own fan-out (p = {p_slow:g}): "
                 + ", ".join(f"{name} from k = {k}" for name, k in cliffs.items()))
    fig.update_layout(
        title=title, xaxis=dict(title="fan-out k (backends per request)", type="log"),
        yaxis=dict(title="end-to-end latency (ms)", type="log"), height=420,
    )
    return fig


def slow_share_figure(results, theory) -> go.Figure:
    """Share of requests meeting a slow backend, measured against 1 - (1 - p)^k."""
    ks = [r.k for r in results]
    gap = max(abs(r.slow_share - t) for r, t in zip(results, theory))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ks, y=[r.slow_share for r in results], mode="markers", name="measured",
                             marker=dict(size=10)))
    fig.add_trace(go.Scatter(x=ks, y=list(theory), mode="lines", name="1 - (1 - p)^k"))
    fig.update_layout(title=f"Measured share of requests meeting a stall follows 1 - (1 - p)^k "
                            f"(largest gap {gap:.3f})",
                      xaxis=dict(title="fan-out k", type="log"), yaxis=dict(title="share", range=[0, 1]), height=380)
    return fig
