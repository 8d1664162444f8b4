"""Figures and the live widget panel of chapter 1 (decomposition).

Figure builders return plain ``go.Figure`` objects built only from their arguments and a
seed (layouts are seeded ``networkx.spring_layout``, one derived stream per cluster;
coordinates are rounded), so nbval can compare them. Each states its point in its title
and has a ``describe_*`` companion that returns the numbers behind the figure as text,
for printing next to it.

``DecompositionPanel`` wires sliders for the threshold and the three weights, a team
rule, an algorithm and a resolution to ``workbook.decomposition.decompose`` and redraws
three ``go.FigureWidget`` (heatmap, capability graph, service graph) and the metrics on
every change. A bad setting (weights not summing to 1) shows the error in the panel and
leaves the figures as they were.
"""

from __future__ import annotations

import html
import math

import networkx as nx
import plotly.graph_objects as go
from plotly.colors import qualitative

from workbook.core.errors import WorkbookError
from workbook.core.seeds import derive_seed
from workbook.decomposition import (METHODS, Catalog, CouplingMatrix, CouplingModel, Decomposition, Grouping,
                                    coupling_graph, decompose, service_cycles, service_dependency_graph)

PALETTE = qualitative.Dark24
TEAM_RULES = {
    "article: different teams couple more (0.2 / 0.8)": (0.2, 0.8),
    "inverse Conway: same team couples more (0.8 / 0.2)": (0.8, 0.2),
}


def _r(x: float) -> float:
    return round(float(x), 4)


# --- heatmap -------------------------------------------------------------------------

def _ordered_names(matrix: CouplingMatrix, grouping: Grouping | None) -> list[str]:
    if grouping is None:
        return list(matrix.names)
    return [m for members in grouping.services for m in members]


def _inside_share(matrix: CouplingMatrix, grouping: Grouping) -> tuple[float, float, float]:
    """(share of the total coupling weight inside services, mean inside, mean across)."""
    service_of = grouping.service_of()
    inside = [v for a, b, v in matrix.pairs() if service_of[a] == service_of[b]]
    across = [v for a, b, v in matrix.pairs() if service_of[a] != service_of[b]]
    total = sum(inside) + sum(across)
    mean = (lambda xs: sum(xs) / len(xs) if xs else float("nan"))
    return (sum(inside) / total if total else 0.0), mean(inside), mean(across)


def heatmap_figure(matrix: CouplingMatrix, title: str | None = None, grouping: Grouping | None = None
                   ) -> go.Figure:
    """The coupling matrix; with ``grouping``, rows and columns ordered by service and each
    service outlined, so a good grouping shows as dark blocks on the diagonal."""
    names = _ordered_names(matrix, grouping)
    z = [[_r(matrix(a, b)) for b in names] for a in names]
    fig = go.Figure(go.Heatmap(z=z, x=names, y=names, zmin=0, zmax=1,
                               colorscale="Blues", text=[[f"{v:.2f}" for v in row] for row in z],
                               texttemplate="%{text}", hovertemplate="%{y} / %{x}: %{z:.3f}<extra></extra>",
                               colorbar={"title": "coupling"}))
    shapes = []
    if grouping is not None:
        start = 0
        for members in grouping.services:
            end = start + len(members)
            shapes.append({"type": "rect", "xref": "x", "yref": "y", "x0": start - 0.5, "x1": end - 0.5,
                           "y0": start - 0.5, "y1": end - 0.5, "line": {"color": "#d62728", "width": 2}})
            start = end
        share, inside, across = _inside_share(matrix, grouping)
        point = (f"{len(grouping)} services (red blocks) hold {share:.0%} of the coupling; mean inside "
                 f"{inside:.2f}, across {across:.2f}")
        title = f"{title}: {point}" if title else point
    size = 120 + 26 * len(names)
    fig.update_layout(title=title or "Coupling between capabilities", height=max(360, size),
                      width=max(460, size + 220), shapes=shapes, yaxis={"autorange": "reversed"},
                      xaxis={"tickangle": -45}, margin={"l": 10, "r": 10})
    return fig


def describe_heatmap(matrix: CouplingMatrix, top: int = 8, grouping: Grouping | None = None) -> str:
    """The strongest pairs and the matrix's spread (the full matrix prints with ``matrix.table()``);
    with ``grouping``, the order of the rows and how much coupling the services hold."""
    pairs = sorted(matrix.pairs(), key=lambda p: (-p[2], p[0], p[1]))
    values = [v for _, _, v in pairs]
    lines = [f"{len(pairs)} pairs; coupling min {min(values):.3f}, mean {sum(values) / len(values):.3f}, "
             f"max {max(values):.3f}", f"strongest {min(top, len(pairs))} pairs:"]
    lines += [f"  {v:.3f}  {a} / {b}" for a, b, v in pairs[:top]]
    if grouping is not None:
        share, inside, across = _inside_share(matrix, grouping)
        lines.append(f"ordered by service: {share:.1%} of the total coupling inside services; mean coupling inside "
                     f"{inside:.3f}, across {across:.3f}")
        lines += [f"  {name}: {', '.join(members)}" for name, members in zip(grouping.names, grouping.services)]
    return "\n".join(lines)


# --- capability graph coloured by service ---------------------------------------------

def capability_positions(matrix: CouplingMatrix, seed: int = 0, grouping: Grouping | None = None
                         ) -> dict[str, tuple[float, float]]:
    """Node positions; with ``grouping``, each service is laid out on its own (a seeded
    spring layout of its members, one derived random stream per service) around its own
    centre, and the centres sit apart on a circle, so a service is a visible cluster."""
    if grouping is None or len(grouping) == 1:
        graph = coupling_graph(matrix)
        pos = nx.spring_layout(graph, weight="weight", seed=derive_seed(seed, "layout") % 2**32, iterations=200)
        return {n: (_r(pos[n][0]), _r(pos[n][1])) for n in matrix.names}
    graph = coupling_graph(matrix)
    n = len(grouping)
    out = {}
    for k, members in enumerate(grouping.services):
        angle = 2 * math.pi * k / n
        cx, cy = 3.0 * math.cos(angle), 3.0 * math.sin(angle)
        radius = 0.35 * math.sqrt(len(members))
        if len(members) == 1:
            local = {members[0]: (0.0, 0.0)}
        else:
            local = nx.spring_layout(graph.subgraph(members), weight="weight", iterations=200,
                                     seed=derive_seed(seed, "layout", "service", k) % 2**32)
        for m in members:
            out[m] = (_r(cx + radius * local[m][0]), _r(cy + radius * local[m][1]))
    return {m: out[m] for m in matrix.names}


def _edges(matrix: CouplingMatrix, grouping: Grouping, edge_min: float):
    service_of = grouping.service_of()
    intra, cross = [], []
    for a, b, v in matrix.pairs():
        if v >= edge_min:
            (intra if service_of[a] == service_of[b] else cross).append((a, b, v))
    return intra, cross


def capability_graph_figure(catalog: Catalog, matrix: CouplingMatrix, grouping: Grouping, *, seed: int = 0,
                            edge_min: float = 0.3, title: str | None = None) -> go.Figure:
    """Capabilities clustered by service (each service its own patch), coloured by service;
    edges for pairs with coupling >= edge_min: solid grey inside a service, dotted red across."""
    pos = capability_positions(matrix, seed, grouping)
    intra, cross = _edges(matrix, grouping, edge_min)
    fig = go.Figure()
    for edges, name, style in ((intra, "inside a service", {"color": "#888", "width": 2}),
                               (cross, "across services", {"color": "#d62728", "width": 1, "dash": "dot"})):
        xs, ys = [], []
        for a, b, _ in edges:
            xs += [pos[a][0], pos[b][0], None]
            ys += [pos[a][1], pos[b][1], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=style, name=f"{name} ({len(edges)})",
                                 hoverinfo="skip"))
    for k, (service, members) in enumerate(zip(grouping.names, grouping.services)):
        fig.add_trace(go.Scatter(
            x=[pos[m][0] for m in members], y=[pos[m][1] for m in members], mode="markers+text",
            text=list(members), textposition="top center", textfont={"size": 9},
            marker={"size": [8 + 3 * catalog[m].complexity for m in members], "color": PALETTE[k % len(PALETTE)],
                    "line": {"width": 1, "color": "white"}},
            name=service, hovertemplate="%{text}<extra>" + service + "</extra>"))
    strong = len(intra) + len(cross)
    point = (f"{len(grouping)} services: {len(intra)} of {strong} strong pairs (coupling >= {edge_min:g}) "
             f"inside a service, {len(cross)} cut")
    fig.update_layout(title=f"{title}: {point}" if title else f"{point} [{grouping.method}]", height=560,
                      xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                      legend={"font": {"size": 9}}, margin={"l": 10, "r": 10})
    return fig


def describe_capability_graph(matrix: CouplingMatrix, grouping: Grouping, edge_min: float = 0.3) -> str:
    intra, cross = _edges(matrix, grouping, edge_min)
    lines = [f"{len(grouping)} services; edges drawn (coupling >= {edge_min:g}): {len(intra)} inside, "
             f"{len(cross)} across"]
    for service, members in zip(grouping.names, grouping.services):
        lines.append(f"  {service}: {', '.join(members)}")
    for a, b, v in cross:
        lines.append(f"  across: {a} / {b} = {v:.3f}")
    return "\n".join(lines)


# --- service dependency graph ---------------------------------------------------------

def _offset(pu, pv, both_ways: bool, gap: float = 0.04):
    """Endpoints of the arrow u -> v, shifted to its left when v -> u exists too, so the two
    directions of a pair run side by side instead of on top of each other."""
    if not both_ways:
        return pu, pv
    dx, dy = pv[0] - pu[0], pv[1] - pu[1]
    length = math.hypot(dx, dy) or 1.0
    nx_, ny_ = -dy / length * gap, dx / length * gap
    return (_r(pu[0] + nx_), _r(pu[1] + ny_)), (_r(pv[0] + nx_), _r(pv[1] + ny_))


def service_graph_figure(catalog: Catalog, grouping: Grouping, *, seed: int = 0, title: str | None = None
                         ) -> go.Figure:
    """Services after grouping (size ~ total complexity), arrows for calls across services.

    Arrows on a dependency cycle are red; the label on an arrow is the number of calls.
    When two services call each other, the two arrows run side by side (each shifted to
    its own left) so both directions stay visible.
    """
    graph = service_dependency_graph(catalog, grouping)
    on_cycle = set()
    for cycle in service_cycles(catalog, grouping):
        members = set(cycle["services"])
        on_cycle |= {(u, v) for u, v in graph.edges if u in members and v in members}
    undirected = graph.to_undirected()
    raw = (nx.spring_layout(undirected, seed=derive_seed(seed, "service layout") % 2**32, iterations=200)
           if len(graph) > 1 else {n: (0.0, 0.0) for n in graph})
    pos = {n: (_r(raw[n][0]), _r(raw[n][1])) for n in grouping.names}
    fig = go.Figure()
    annotations = []
    for u, v, data in graph.edges(data=True):
        color = "#d62728" if (u, v) in on_cycle else "#555"
        (x0, y0), (x1, y1) = _offset(pos[u], pos[v], graph.has_edge(v, u))
        annotations.append({"x": x1, "y": y1, "ax": x0, "ay": y0, "xref": "x",
                            "yref": "y", "axref": "x", "ayref": "y", "showarrow": True, "arrowhead": 3,
                            "arrowsize": 1.2, "arrowwidth": 1 + data["weight"] * 0.5, "arrowcolor": color,
                            "standoff": 14, "startstandoff": 10})
        annotations.append({"x": _r((x0 + x1) / 2), "y": _r((y0 + y1) / 2),
                            "text": str(data["weight"]), "showarrow": False, "font": {"size": 10, "color": color}})
    totals = [sum(catalog[m].complexity for m in members) for members in grouping.services]
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n in grouping.names], y=[pos[n][1] for n in grouping.names], mode="markers+text",
        text=list(grouping.names), textposition="bottom center", textfont={"size": 9},
        marker={"size": [10 + 2 * t for t in totals], "color": [PALETTE[k % len(PALETTE)]
                                                                 for k in range(len(grouping))], "opacity": 0.85},
        customdata=totals, hovertemplate="%{text}<br>total complexity %{customdata}<extra></extra>",
        showlegend=False))
    n_cycles = len(service_cycles(catalog, grouping))
    calls = sum(d["weight"] for _, _, d in graph.edges(data=True))
    point = (f"{calls} calls cross service boundaries ({graph.number_of_edges()} arrows); "
             + (f"{n_cycles} dependency cycle(s), red" if n_cycles else "no dependency cycle"))
    fig.update_layout(title=f"{title}: {point}" if title else point,
                      annotations=annotations, height=480, xaxis={"visible": False}, yaxis={"visible": False},
                      margin={"l": 10, "r": 10})
    return fig


def describe_service_graph(catalog: Catalog, grouping: Grouping) -> str:
    graph = service_dependency_graph(catalog, grouping)
    cycles = service_cycles(catalog, grouping)
    lines = [f"{len(graph)} services, {graph.number_of_edges()} dependency edges, {len(cycles)} cycles"]
    for u, v, data in graph.edges(data=True):
        lines.append(f"  {u} -> {v}: {data['weight']} ({', '.join(data['calls'])})")
    for c in cycles:
        lines.append("  cycle: " + " -> ".join(c["example_cycle"]))
    return "\n".join(lines)


# --- the live panel -------------------------------------------------------------------

def model_from(data: float, functional: float, team: float, team_rule: str) -> CouplingModel:
    same, different = TEAM_RULES[team_rule]
    return CouplingModel.from_weights(data, functional, team, same_team=same, different_team=different)


class DecompositionPanel:
    """Sliders and dropdowns that re-run ``decompose`` and redraw figures and metrics live.

    ``panel.widget`` is the box to display; ``panel.set(...)`` changes controls from code
    (the same path a slider takes); ``panel.summary_text()`` prints the current numbers.
    """

    def __init__(self, catalog: Catalog, *, seed: int = 0, threshold: float = 0.3,
                 weights: tuple[float, float, float] = (0.4, 0.4, 0.2), team_rule: str | None = None,
                 method: str = "louvain", resolution: float = 1.0):
        import ipywidgets as w

        self.catalog, self.seed = catalog, seed
        slider = {"min": 0.0, "max": 1.0, "step": 0.05, "continuous_update": False, "readout_format": ".2f",
                  "style": {"description_width": "110px"}}
        self.threshold = w.FloatSlider(value=threshold, description="threshold", **{**slider, "step": 0.01})
        self.w_data = w.FloatSlider(value=weights[0], description="weight: data", **slider)
        self.w_functional = w.FloatSlider(value=weights[1], description="weight: functional", **slider)
        self.w_team = w.FloatSlider(value=weights[2], description="weight: team", **slider)
        self.team_rule = w.Dropdown(options=list(TEAM_RULES), value=team_rule or next(iter(TEAM_RULES)),
                                    description="team rule", style={"description_width": "110px"},
                                    layout={"width": "460px"})
        self.method = w.Dropdown(options=list(METHODS), value=method, description="algorithm",
                                 style={"description_width": "110px"})
        self.resolution = w.FloatSlider(value=resolution, min=0.5, max=3.0, step=0.1, description="resolution",
                                        continuous_update=False, style={"description_width": "110px"})
        self.status = w.HTML()
        self.heatmap = go.FigureWidget()
        self.capability_graph = go.FigureWidget()
        self.service_graph = go.FigureWidget()
        self.result: Decomposition | None = None
        self.error: str | None = None
        controls = [self.threshold, self.w_data, self.w_functional, self.w_team, self.team_rule, self.method,
                    self.resolution]
        for control in controls:
            control.observe(lambda _change: self.update(), names="value")
        self.widget = w.VBox([w.HBox([w.VBox(controls[:4]), w.VBox(controls[4:])]), self.status,
                              w.HBox([self.capability_graph, self.service_graph]), self.heatmap])
        self._muted = False
        self.update()

    def set(self, **values) -> None:
        """Set several controls at once, redrawing once: ``set(w_data=0.5, method="louvain")``."""
        self._muted = True
        try:
            for name, value in values.items():
                getattr(self, name).value = value
        finally:
            self._muted = False
        self.update()

    def update(self) -> None:
        if self._muted:
            return
        try:
            model = model_from(self.w_data.value, self.w_functional.value, self.w_team.value, self.team_rule.value)
            result = decompose(self.catalog, model, self.method.value, threshold=self.threshold.value,
                               seed=self.seed, resolution=self.resolution.value)
        except WorkbookError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.status.value = f"<b style='color:#d62728'>{html.escape(self.error)}</b> (figures not redrawn)"
            return
        self.error, self.result = None, result
        _replace(self.heatmap, heatmap_figure(result.matrix, grouping=result.grouping))
        _replace(self.capability_graph, capability_graph_figure(self.catalog, result.matrix, result.grouping,
                                                                seed=self.seed))
        _replace(self.service_graph, service_graph_figure(self.catalog, result.grouping, seed=self.seed))
        self.status.value = "<pre>" + html.escape(self.summary_text()) + "</pre>"

    def summary_text(self) -> str:
        if self.error:
            return self.error
        r = self.result
        checks = r.report["checks"]
        w = r.model.weights
        return (f"weights data {w.data:.2f} functional {w.functional:.2f} team {w.team:.2f}; "
                f"same/different team {r.model.same_team:g}/{r.model.different_team:g}; {r.grouping.method}\n"
                f"{r.metrics.summary()}\n"
                f"ownership conflicts {len(checks['ownership_conflicts'])}, cycles {len(checks['cycles'])}, "
                f"size violations {len(checks['size_violations'])}\n"
                + "\n".join(f"  {n}: {', '.join(m)}" for n, m in zip(r.grouping.names, r.grouping.services)))


def _replace(widget: go.FigureWidget, figure: go.Figure) -> None:
    with widget.batch_update():
        widget.data = []
        widget.add_traces(list(figure.data))
        widget.layout = figure.layout
