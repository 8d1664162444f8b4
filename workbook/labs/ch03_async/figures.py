"""Figures and widgets for chapter 3 (asynchronous communication and sagas).

Figure builders take the plain results of the lab's experiments and saga traces and
return ``plotly.graph_objects.Figure``, whose title states the figure's point;
``control_panel`` wires ipywidgets to them. Nothing here computes a result the notebook does not also print.
"""

from __future__ import annotations

import plotly.graph_objects as go

from plotly.subplots import make_subplots

from workbook.labs.ch03_async.delivery import CrashResult, compare_modes
from workbook.labs.ch03_async.ordering import LagResult, OrderingResult
from workbook.messaging.consumer import DeliveryMode
from workbook.sagas.order_flow import STEPS, single_saga_trace

MODE_COLOURS = {"at-most-once": "#d62728", "at-least-once": "#ff7f0e", "effectively-once": "#2ca02c"}


def delivery_bars(results: list[CrashResult], title: str | None = None) -> go.Figure:
    """Lost and duplicated effects per delivery mode."""
    modes = [r.mode for r in results]
    fig = go.Figure([
        go.Bar(name="lost", x=modes, y=[r.lost for r in results], marker_color="#d62728",
               text=[r.lost for r in results], textposition="outside"),
        go.Bar(name="duplicated", x=modes, y=[r.duplicated for r in results], marker_color="#ff7f0e",
               text=[r.duplicated for r in results], textposition="outside"),
    ])
    r0 = results[0]
    fig.update_layout(barmode="group", height=340, margin=dict(t=50, b=40, l=50, r=20),
                      title=title or (f"Ack first loses, ack last duplicates, the idempotent consumer neither "
                                      f"({r0.messages} messages, {r0.consumers} consumers, crash rate "
                                      f"{r0.crash_rate:g})"),
                      yaxis_title="messages")
    return fig


def ordering_bars(results: list[OrderingResult]) -> go.Figure:
    labels = ["keyed (CRC-32 of the key)" if r.keyed else "unkeyed (round-robin)" for r in results]
    fig = go.Figure(go.Bar(x=labels, y=[r.violations for r in results], text=[r.violations for r in results],
                           textposition="outside", marker_color=["#2ca02c" if r.keyed else "#d62728" for r in results]))
    fig.update_layout(height=300, margin=dict(t=50, b=40, l=50, r=20), yaxis_title="order violations",
                      title="Keyed partitions keep each order's messages in order; round-robin does not")
    return fig


def lag_figure(results: list[LagResult]) -> go.Figure:
    """Lag over time, one panel per consumer count (same axes), so no curve hides another:
    the curves for 8 and 16 consumers are identical, which is the point."""
    p = results[0]
    fig = make_subplots(rows=1, cols=len(results), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[f"{r.consumers} consumer{'s' if r.consumers > 1 else ''}: "
                                        f"{r.drain_time:.1f} s" for r in results])
    longest = max(r.drain_time for r in results)
    for i, r in enumerate(results, start=1):
        fig.add_trace(go.Scatter(x=[t for t, _ in r.samples], y=[lag for _, lag in r.samples], mode="lines+markers",
                                 marker=dict(size=3), name=f"{r.consumers} consumer(s)", showlegend=False), 1, i)
        fig.update_xaxes(range=[0, longest * 1.05], title_text="s" if i > 1 else "virtual time (s)", row=1, col=i)
    fig.update_yaxes(title_text="consumer lag (messages)", row=1, col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=320, margin=dict(t=80, b=40, l=60, r=20),
                      title=f"Burst of {p.burst} messages into {p.partitions} partitions: consumers beyond "
                            f"{p.partitions} do not drain it faster (time to drain above each panel)")
    return fig


def sequence_diagram(trace, lanes: list[str] | None = None, title: str = "Saga") -> go.Figure:
    """A sequence diagram: one lifeline per participant, time downwards, an arrow per message.

    ``trace`` holds ``(time, source, target, label)``; messages at the same instant are
    spread out in the order they were sent, so the diagram reads top to bottom.
    """
    lanes = lanes or list(dict.fromkeys([x for _, s, t, _ in trace for x in (s, t)]))
    pos = {name: i for i, name in enumerate(lanes)}
    rows = list(range(len(trace)))
    fig = go.Figure()
    bottom = len(trace) + 0.5
    for name, x in pos.items():
        fig.add_trace(go.Scatter(x=[x, x], y=[-0.8, bottom], mode="lines", line=dict(color="#bbbbbb", dash="dot"),
                                 hoverinfo="skip", showlegend=False))
    for row, (t, src, dst, label) in zip(rows, trace):
        colour = "#d62728" if any(w in label for w in ("Rejected", "Failed", "timeout", "Error", "undo",
                                                        "Refunded", "Released")) else "#1f77b4"
        if src == dst:
            fig.add_annotation(x=pos[src], y=row, text=f"{label} t={t:.2f}", showarrow=False, font=dict(size=10),
                               bgcolor="#fff3cd")
            continue
        fig.add_annotation(x=pos[dst], y=row, ax=pos[src], ay=row, xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor=colour, text="")
        fig.add_annotation(x=(pos[src] + pos[dst]) / 2, y=row - 0.3, text=f"{label}  t={t:.2f}s", showarrow=False,
                           font=dict(size=10, color=colour))
    fig.update_xaxes(tickvals=list(pos.values()), ticktext=list(pos), range=[-0.6, len(lanes) - 0.4],
                     side="top", showgrid=False, zeroline=False)
    fig.update_yaxes(autorange="reversed", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(height=max(300, 34 * len(trace) + 120), margin=dict(t=70, b=20, l=20, r=20), title=title,
                      showlegend=False)
    return fig


def saga_diagram(fail_step: str | None = "shipping", seed: int = 0) -> go.Figure:
    run = single_saga_trace(fail_step, seed=seed)
    where = f"{fail_step} refused (step {STEPS.index(fail_step) + 1})" if fail_step else "no failure"
    return sequence_diagram(run.trace, ["orchestrator", *STEPS],
                            title=f"Order saga, {where}: {run.statuses['order-000']}")


def panel_results(mode: str = "at-least-once", consumers: int = 3, crash_rate: float = 0.05,
                  fail_step: str | None = "shipping", *, messages: int = 500, seed: int = 0):
    """What the control panel shows, as plain data: (all modes' results, the chosen one, saga trace)."""
    results = compare_modes(messages=messages, consumers=consumers, crash_rate=crash_rate, seed=seed)
    chosen = next(r for r in results if r.mode == DeliveryMode.parse(mode).value)
    return results, chosen, single_saga_trace(fail_step, seed=seed)


def crash_panel_text(mode="at-least-once", consumers=3, crash_rate=0.05, fail_step="shipping", *, messages=500, seed=0):
    results, chosen, saga = panel_results(mode, consumers, crash_rate, fail_step, messages=messages, seed=seed)
    lines = [f"{r.mode:>16}: lost {r.lost:4d}, duplicated {r.duplicated:4d}, crashes {r.crashes:3d}"
             + ("   <- chosen" if r is chosen else "") for r in results]
    lines.append(f"saga failing at {fail_step}: {saga.statuses['order-000']}; {_verdict_line(saga.verdict)}")
    return "\n".join(lines)


def _verdict_line(verdict) -> str:
    return f"{'PASS' if verdict else 'FAIL'}: {verdict.subject}"


def control_panel(*, messages: int = 500, seed: int = 0):
    """Widgets (delivery mode, consumers, crash rate, failing saga step) redrawing two figures."""
    import ipywidgets as w

    mode = w.Dropdown(options=[m.value for m in DeliveryMode], value="at-least-once", description="mode")
    consumers = w.IntSlider(value=3, min=1, max=8, description="consumers")
    crash = w.FloatSlider(value=0.05, min=0.0, max=0.3, step=0.01, description="crash rate")
    step = w.Dropdown(options=[("none", None)] + [(s, s) for s in STEPS], value="shipping",
                      description="saga fails at")
    text = w.HTML()
    bars, seq = go.FigureWidget(), go.FigureWidget()

    def replace(widget, fig):
        with widget.batch_update():
            widget.data = []
            for tr in fig.data:
                widget.add_trace(tr)
            widget.layout = fig.layout

    def redraw(*_):
        results, chosen, saga = panel_results(mode.value, consumers.value, crash.value, step.value,
                                              messages=messages, seed=seed)
        replace(bars, delivery_bars(results, title=f"chosen: {chosen.mode}, {consumers.value} consumers, "
                                                   f"crash rate {crash.value:g}"))
        replace(seq, saga_diagram(step.value, seed))
        lines = [f"{r.mode:>16}: lost {r.lost:4d}, duplicated {r.duplicated:4d}, crashes {r.crashes:3d}"
                 + ("   <- chosen" if r is chosen else "") for r in results]
        lines.append(f"saga failing at {step.value}: {saga.statuses['order-000']}; {_verdict_line(saga.verdict)}")
        text.value = "<pre>" + "\n".join(lines) + "</pre>"

    for control in (mode, consumers, crash, step):
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([mode, consumers]), w.HBox([crash, step]), text, bars, seq])
