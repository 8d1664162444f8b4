"""Chapter 5's figures and widgets (plotly, ipywidgets): each title states the figure's point.

* ``self_preservation_figure``: instances a registry lists during a partition, with and
  without Eureka's self-preservation, against the instances really alive.
* ``detector_figure``: time to detect a crash against false suspicions per hour, fixed
  timeouts and phi-accrual thresholds swept.
* ``balancer_figure``: p50 / p99 latency and load share per algorithm.
* ``remap_figure``: the share of keys that move when one backend of N leaves.
* ``balancer_panel``: a multi-select of algorithms, sliders for the fast and slow
  instances' service times and the stall's length, a drop-down for the stalled instance,
  over a ``go.FigureWidget`` of the comparison; the container has the CSS class
  ``balancer-panel``, its summary ``balancer-panel-summary``, each control
  ``balancer-panel-<name>`` (what the browser test looks for).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbook.labs.ch05_discovery.balancing_runs import (DEFAULT_ALGORITHMS, InstanceSpec, Stall,
                                                         compare_balancers)

FAMILIES = (("timeout", None, "fixed timeout (s)"), ("phi", 0.0, "phi threshold"),
            ("phi", 3.0, "phi threshold, 3 s acceptable pause"))


def self_preservation_figure(comparison: dict, *, partition=(600.0, 1800.0)) -> go.Figure:
    """Instances listed over time; ``comparison`` is ``experiments.self_preservation_comparison()``."""
    fig = go.Figure()
    with_sp, without = comparison["with"], comparison["without"]
    fig.add_vrect(x0=partition[0] / 60, x1=partition[1] / 60, fillcolor="#d3d3d3", opacity=0.35, line_width=0,
                  annotation_text="partition", annotation_position="top left")
    minutes = [t / 60 for t in with_sp["times"]]
    fig.add_scatter(x=minutes, y=with_sp["alive"], name="instances alive", mode="lines",
                    line={"color": "#2a3f5f", "dash": "dot", "shape": "hv"})
    fig.add_scatter(x=minutes, y=with_sp["registered"], name="listed, self-preservation on (Eureka)", mode="lines",
                    line={"color": "#00cc96", "shape": "hv"})
    fig.add_scatter(x=[t / 60 for t in without["times"]], y=without["registered"], name="listed, no self-preservation",
                    mode="lines", line={"color": "#EF553B", "shape": "hv"})
    fig.update_layout(title="Cut off from its clients, a registry without self-preservation expires the whole "
                            "service;<br>with it, it keeps every instance, a crashed one too",
                      xaxis_title="virtual time (min)", yaxis_title="instances", height=400)
    return fig


def detector_figure(rows: list[dict]) -> go.Figure:
    """Median time to detect a crash against false suspicions per hour (``experiments.detector_sweep_table``)."""
    fig = go.Figure()
    for kind, pause, label in FAMILIES:
        pts = [r for r in rows if r["kind"] == kind and (pause is None or r["acceptable_pause"] == pause)]
        if not pts:
            continue
        fig.add_scatter(x=[r["false_per_hour"] for r in pts], y=[r["detect_p50"] for r in pts], name=label,
                        mode="lines+markers+text", textposition="top right",
                        # the acceptable-pause curve is crowded near the origin: label its ends only
                        text=[f"{r['setting']:g}" if pause != 3.0 or i in (0, len(pts) - 1) else ""
                              for i, r in enumerate(pts)],
                        hovertext=[r["detector"] for r in pts])
    fig.update_layout(title="Detecting faster costs false suspicions: a tuned timeout and bare phi sit on one "
                            "curve;<br>the acceptable pause moves phi to few false suspicions",
                      xaxis_title="false suspicions per hour (live sender suspected)",
                      yaxis_title="time to detect a crash, median (s)", height=420)
    return fig


def balancer_figure(rows: list[dict], *, title: str | None = None) -> go.Figure:
    """p50 and p99 (log scale) and each instance's share, per algorithm (``compare_balancers`` rows).

    The latency bars are grouped; the share bars are stacked (one offset group, cumulative
    bases), so each algorithm's column adds up to 1.
    """
    algorithms = [r["algorithm"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("latency (ms, log scale)", "share of requests"),
                        horizontal_spacing=0.12)
    latency = [("p50", "p50_ms"), ("p99", "p99_ms")]
    if rows and "stall_p99_ms" in rows[0]:
        latency.append(("p99 of arrivals during the stall", "stall_p99_ms"))
    for label, key in latency:
        fig.add_bar(x=algorithms, y=[r[key] for r in rows], name=label, offsetgroup=label, row=1, col=1)
    names = [k.removeprefix("share_") for k in rows[0] if k.startswith("share_")] if rows else []
    base = [0.0] * len(rows)
    for name in names:
        ys = [r[f"share_{name}"] for r in rows]
        fig.add_bar(x=algorithms, y=ys, base=list(base), name=name, offsetgroup="share", row=1, col=2)
        base = [round(b + y, 6) for b, y in zip(base, ys)]
    fig.update_yaxes(type="log", dtick=1, row=1, col=1)
    fig.update_xaxes(tickangle=30)
    fig.update_layout(barmode="group", height=450,
                      title=title or "Balancers that count in-flight requests cut the tail: they send the slow and the "
                                     "stalled<br>instances less; the article's least connections sends everything "
                                     "to the first", margin={"t": 110})
    return fig


def remap_figure(rows: list[dict]) -> go.Figure:
    """Share of keys moved when one backend of N leaves (``remap_shares`` rows)."""
    labels = [r["balancer"].replace(" (", "<br>(") for r in rows]
    fig = go.Figure()
    fig.add_bar(x=labels, y=[r["owned_by_leaving"] for r in rows], name="owned by the leaving backend (must move)")
    fig.add_bar(x=labels, y=[r["moved_between_others"] for r in rows], name="moved between staying backends")
    if rows:
        fig.add_hline(y=rows[0]["ideal"], line_dash="dot", annotation_text=f"1/N = {rows[0]['ideal']:g}")
    fig.update_layout(barmode="stack", height=380, yaxis_title="share of keys moved",
                      title="When one of N backends leaves, a ketama ring and Maglev move about 1/N of the keys;<br>"
                            "a small ring moves more, and moves keys between backends that stayed")
    return fig


def panel_instances(fast_ms: float, slow_ms: float) -> list[InstanceSpec]:
    """Three fast and two slow instances, two requests at a time each (the chapter's fleet)."""
    return ([InstanceSpec(f"fast-{i}", fast_ms / 1000, 2) for i in (1, 2, 3)]
            + [InstanceSpec(f"slow-{i}", slow_ms / 1000, 2) for i in (1, 2)])


def panel_rows(algorithms, fast_ms: float, slow_ms: float, stall_s: float, stalled: str, *, seed: int = 0,
               duration: float = 6.0) -> list[dict]:
    """The rows the panel draws (also what a checked cell prints after it)."""
    stall = Stall(stalled, 3.0, stall_s) if stall_s > 0 else None
    return compare_balancers(seed, algorithms=list(algorithms), instances=panel_instances(fast_ms, slow_ms),
                             stall=stall, duration=duration)


def panel_text(rows: list[dict], fast_ms: float, slow_ms: float, stall_s: float, stalled: str) -> str:
    best = min(rows, key=lambda r: (r["p99_ms"], r["algorithm"]))
    worst = max(rows, key=lambda r: (r["p99_ms"], r["algorithm"]))
    stall = f"{stalled} stalls {stall_s:g} s" if stall_s > 0 else "no stall"
    return (f"fast {fast_ms:g} ms, slow {slow_ms:g} ms, {stall}: lowest p99 {best['algorithm']} "
            f"{best['p99_ms']:g} ms; highest {worst['algorithm']} {worst['p99_ms']:g} ms")


def balancer_panel(seed: int = 0, *, algorithms=("round_robin", "least_connections", "least_request", "peak_ewma"),
                   fast_ms: float = 10.0, slow_ms: float = 30.0, stall_s: float = 0.5, stalled: str = "fast-1",
                   duration: float = 6.0):
    """Controls over a FigureWidget of ``balancer_figure``; returns the container (see the module docstring)."""
    import ipywidgets as widgets

    style, layout = {"description_width": "150px"}, widgets.Layout(width="400px")
    controls = {
        "algorithms": widgets.SelectMultiple(options=list(DEFAULT_ALGORITHMS), value=tuple(algorithms),
                                             description="algorithms", rows=8),
        "fast_ms": widgets.FloatSlider(value=fast_ms, min=2.0, max=30.0, step=1.0, description="fast service (ms)"),
        "slow_ms": widgets.FloatSlider(value=slow_ms, min=5.0, max=100.0, step=5.0, description="slow service (ms)"),
        "stall_s": widgets.FloatSlider(value=stall_s, min=0.0, max=2.0, step=0.1, description="stall (s)"),
        "stalled": widgets.Dropdown(options=[f"fast-{i}" for i in (1, 2, 3)] + ["slow-1", "slow-2"], value=stalled,
                                    description="stalled instance"),
    }
    for name, c in controls.items():
        c.continuous_update, c.style, c.layout = False, style, layout
        c.add_class("balancer-panel-control")
        c.add_class(f"balancer-panel-{name.replace('_', '-')}")

    def compute():
        v = {k: c.value for k, c in controls.items()}
        chosen = list(v["algorithms"]) or ["round_robin"]
        rows = panel_rows(chosen, v["fast_ms"], v["slow_ms"], v["stall_s"], v["stalled"], seed=seed,
                          duration=duration)
        return rows, panel_text(rows, v["fast_ms"], v["slow_ms"], v["stall_s"], v["stalled"])

    rows, text = compute()
    figure = go.FigureWidget(balancer_figure(rows, title="p99 and load share per algorithm: change a control"))
    summary = widgets.HTML(value=text)
    summary.add_class("balancer-panel-summary")
    container = widgets.VBox([widgets.HBox([controls["algorithms"],
                                            widgets.VBox([controls[k] for k in ("fast_ms", "slow_ms", "stall_s",
                                                                                "stalled")])]),
                              summary, figure])
    container.add_class("balancer-panel")
    container.figure, container.controls, container.summary = figure, controls, summary

    def redraw(_change=None):
        rows, text = compute()
        fresh = balancer_figure(rows)
        with figure.batch_update():
            figure.data = ()
            for trace in fresh.data:
                figure.add_trace(trace)
        summary.value = text

    for c in controls.values():
        c.observe(redraw, names="value")
    container.redraw = redraw
    return container
