"""Figures and the explorer widget for chapter 0 (the tour)."""

from __future__ import annotations

import networkx as nx
import plotly.graph_objects as go

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


def architecture_figure(arch: Architecture, selected: str | None = None, *, kind: str = "layered", seed: int = 0) -> go.Figure:
    """The system as a graph; with ``selected``, what it calls (green) and what calls it (orange)."""
    pos = layout(arch, kind, seed)
    roles = highlight_roles(arch, selected)
    fig = go.Figure()
    for mode in ("sync", "async", "data"):
        for active in (False, True):
            xs, ys = [], []
            for a, b, d in arch.graph.edges(data=True):
                if d["mode"] != mode or (selected in (a, b)) != active:
                    continue
                xs += [pos[a][0], pos[b][0], None]
                ys += [pos[a][1], pos[b][1], None]
            # every trace is always present (maybe empty), so the explorer can update the
            # figure trace by trace whatever is selected
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", hoverinfo="skip",
                name=f"{mode}{' (selected)' if active else ''}", showlegend=not active,
                line=dict(dash=MODE_DASH[mode], width=3 if active else 1,
                          color="#e41a1c" if active else "#bdbdbd"),
            ))
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
    title = arch.name if selected is None else (
        f"{arch.name}: {selected} calls green, is called by orange (purple: both)")
    fig.update_layout(title=title, height=560, margin=dict(l=10, r=10, t=50, b=10),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), legend=dict(orientation="h"))
    return fig


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
        summary.value = (f"<b>{node}</b> calls: {', '.join(arch.callees(node)) or 'nothing'}<br>"
                         f"called by: {', '.join(arch.callers(node)) or 'nothing'}<br>"
                         f"blast radius (nodes waiting on it synchronously): {len(arch.blast_radius(node))} nodes")

    picker.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([picker, summary, figure])
    box.add_class("architecture-explorer")
    return box


def tail_figure(results, p_slow: float | None = None) -> go.Figure:
    """p50, p90 and p99 of the end-to-end latency against fan-out k (log-log)."""
    ks = [r.k for r in results]
    fig = go.Figure()
    for name in ("p50", "p90", "p99"):
        fig.add_trace(go.Scatter(x=ks, y=[getattr(r, f"{name}_ms") for r in results], mode="lines+markers", name=name))
    fig.update_layout(
        title="The tail at scale: latency of a request fanning out to k backends",
        xaxis=dict(title="fan-out k (backends per request)", type="log"),
        yaxis=dict(title="end-to-end latency (ms)", type="log"), height=420,
    )
    return fig


def slow_share_figure(results, theory) -> go.Figure:
    """Share of requests meeting a slow backend, measured against 1 - (1 - p)^k."""
    ks = [r.k for r in results]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ks, y=[r.slow_share for r in results], mode="markers", name="measured",
                             marker=dict(size=10)))
    fig.add_trace(go.Scatter(x=ks, y=theory, mode="lines", name="1 - (1 - p)^k"))
    fig.update_layout(title="Share of requests that hit at least one slow backend",
                      xaxis=dict(title="fan-out k", type="log"), yaxis=dict(title="share", range=[0, 1]), height=380)
    return fig
