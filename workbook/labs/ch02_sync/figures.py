"""Figures and widget panels of chapter 2 (synchronous communication and resilience).

* ``breaker_figure(runs)``: state timelines of one or more ``BreakerRun`` and, per run,
  stacked per-second counts of ok / slow / failed / rejected calls.
* ``storm_figure``, ``timeout_figure``, ``hedging_figure``: the other experiments.
* ``breaker_panel()``: THE PANEL. Sliders (failure rate, slow-call rate, both thresholds,
  window size, wait in open) re-run the virtual-time simulation and redraw a
  ``go.FigureWidget`` live. The container has the CSS class ``breaker-panel`` and each
  slider ``breaker-panel-slider`` (what the browser test looks for).
* ``live_breaker_widget(breaker)``: a FigureWidget that follows a real breaker's events
  (second mode: requests flowing to the real aiohttp demo service).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

import math
from dataclasses import replace

from workbook.labs.ch02_sync.breaker_runs import BROWNOUT, WINDOW_CONFIG, BreakerRun, Phase, Scenario, breaker_timeline
from workbook.resilience import State

STATE_Y = {"CLOSED": 0, "HALF_OPEN": 1, "OPEN": 2, "FORCED_OPEN": 2, "DISABLED": 0, "METRICS_ONLY": 0}
STATE_NAMES = ["CLOSED", "HALF_OPEN", "OPEN"]
OUTCOME_COLORS = {"ok": "#2ca02c", "slow": "#ff7f0e", "failed": "#d62728", "rejected": "#7f7f7f"}
RUN_COLORS = ["#9467bd", "#1f77b4", "#17becf"]


def state_steps(run: BreakerRun) -> tuple[list[float], list[int]]:
    """(x, y) of the state as a step line from 0 to the end of the run."""
    xs, ys = [0.0], [0]
    for t, _, to in run.transitions:
        xs.append(t)
        ys.append(STATE_Y[to])
    xs.append(run.duration)
    ys.append(ys[-1])
    return xs, ys


def breaker_figure(runs, *, title: str = "Circuit breaker through a fault") -> go.Figure:
    """State lines (one per run, drawn slightly apart so that overlapping lines stay visible:
    the first run is dashed and thick) and per-second outcomes per run; the fault is a
    labelled band."""
    runs = [runs] if isinstance(runs, BreakerRun) else list(runs)
    fig = make_subplots(rows=1 + len(runs), cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        row_heights=[0.3] + [0.7 / len(runs)] * len(runs),
                        subplot_titles=["breaker state"] + [f"calls per second: {r.label}" for r in runs])
    for i, run in enumerate(runs):
        xs, ys = state_steps(run)
        offset = 0.08 * (i - (len(runs) - 1) / 2) if len(runs) > 1 else 0.0
        line = dict(color=RUN_COLORS[i % 3], width=4 if i == 0 and len(runs) > 1 else 2,
                    dash="dash" if i == 0 and len(runs) > 1 else "solid")
        fig.add_trace(go.Scatter(x=xs, y=[round(y + offset, 3) for y in ys], mode="lines", line_shape="hv",
                                 name=run.label, line=line), row=1, col=1)
    for i, run in enumerate(runs):
        per = run.per_second()
        seconds = list(range(len(per["ok"])))
        for outcome in ("ok", "slow", "failed", "rejected"):
            fig.add_trace(go.Bar(x=seconds, y=per[outcome], name=outcome, marker_color=OUTCOME_COLORS[outcome],
                                 legendgroup=outcome, showlegend=i == 0), row=2 + i, col=1)
    run = runs[0]
    if run.fault[0] < run.fault[1] <= run.duration:
        fig.add_vrect(x0=run.fault[0], x1=run.fault[1], fillcolor="red", opacity=0.08, line_width=0, row="all",
                      col=1)
        fig.add_annotation(x=(run.fault[0] + run.fault[1]) / 2, y=2.25, xref="x", yref="y", showarrow=False,
                           text=f"fault: t={run.fault[0]:g}-{run.fault[1]:g} s", font=dict(color="#b22222"))
    fig.update_layout(barmode="stack", title=title, height=280 + 200 * len(runs), bargap=0.05,
                      margin=dict(l=60, r=20, t=80, b=40))
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=STATE_NAMES, range=[-0.35, 2.45], row=1, col=1)
    fig.update_xaxes(title_text="time (s)", row=1 + len(runs), col=1)
    return fig


def storm_figure(naive, budget) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35],
                        subplot_titles=["backend requests per second", "backend requests per client request (outage)"])
    for run, color in ((naive, "#d62728"), (budget, "#2ca02c")):
        fig.add_trace(go.Scatter(x=list(range(len(run.backend_per_second))), y=run.backend_per_second,
                                 mode="lines", line_shape="hv", name=run.label, line=dict(color=color)), row=1, col=1)
    fig.add_trace(go.Bar(x=["naive", "jitter + budget"], y=[round(naive.amplification, 3),
                                                            round(budget.amplification, 3)],
                         marker_color=["#d62728", "#2ca02c"], showlegend=False), row=1, col=2)
    fig.update_layout(title=f"Retry storm: during the outage one client request became {naive.amplification:.1f} "
                            f"backend requests with naive retries, {budget.amplification:.2f} with a budget",
                      height=400, legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text="time (s)", row=1, col=1)
    return fig


def timeout_figure(points) -> go.Figure:
    """Two panels, one y axis each: availability, and p99 latency (finite points only; the
    timeouts whose p99 is infinite are named in the panel title)."""
    infinite = [p for p in points if math.isinf(p.p99)]
    note = (" (infinite at " + ", ".join(f"{p.timeout * 1000:g} ms" for p in infinite) + ": not drawn)") \
        if infinite else ""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["availability (%)", "p99 latency (ms)" + note])
    xs = [p.timeout for p in points]
    fig.add_trace(go.Scatter(x=xs, y=[round(100 * p.availability, 2) for p in points], name="availability (%)",
                             mode="lines+markers", showlegend=False), row=1, col=1)
    finite = [p for p in points if not math.isinf(p.p99)]
    fig.add_trace(go.Scatter(x=[p.timeout for p in finite], y=[round(p.p99 * 1000, 1) for p in finite],
                             name="p99 (ms)", mode="lines+markers", showlegend=False), row=1, col=2)
    ticks = [p.timeout for p in points]
    fig.update_xaxes(type="log", title_text="per-try timeout (s)", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_yaxes(range=[0, 101], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(title="Timeouts: availability plateaus from 100 ms while p99 keeps growing with the timeout",
                      height=380)
    return fig


def hedging_figure(runs, quantiles=(0.5, 0.9, 0.95, 0.99, 0.999)) -> go.Figure:
    """Grouped bars on a linear axis (ms)."""
    fig = go.Figure()
    labels = [f"p{q * 100:g}" for q in quantiles]
    for run in runs:
        fig.add_trace(go.Bar(x=labels, y=[round(run.q(q) * 1000, 1) for q in quantiles],
                             name=f"{run.label} (x{run.load:.3f} requests)"))
    fig.update_layout(title="Hedged requests cut the tail (p95 and above) for a few percent more requests",
                      yaxis_title="latency (ms)", barmode="group", height=380)
    return fig


# ---------------------------------------------------------------------------------------
# the panel
# ---------------------------------------------------------------------------------------

PANEL_DEFAULTS = dict(failure_rate=0.1, slow_rate=0.8, failure_rate_threshold=50.0, slow_call_rate_threshold=50.0,
                      window_size=20, wait_duration=5.0)


def panel_run(failure_rate=0.1, slow_rate=0.8, failure_rate_threshold=50.0, slow_call_rate_threshold=50.0,
              window_size=20, wait_duration=5.0, *, seed=0) -> BreakerRun:
    """The simulation behind the panel: healthy, 30 s of the chosen fault from t=20, healthy."""
    scenario = Scenario((Phase(0.0), Phase(20.0, failure_rate=failure_rate, slow_rate=slow_rate, fault=True),
                         Phase(50.0)), duration=BROWNOUT.duration, rate=BROWNOUT.rate)
    config = replace(WINDOW_CONFIG, failure_rate_threshold=failure_rate_threshold,
                     slow_call_rate_threshold=slow_call_rate_threshold, sliding_window_size=int(window_size),
                     minimum_number_of_calls=int(window_size), wait_duration_in_open_state=wait_duration)
    return breaker_timeline("sliding_window", config=config, scenario=scenario, seed=seed)


def breaker_panel_text(run: BreakerRun) -> str:
    c = run.counts()
    opened = sum(1 for _, _, to in run.transitions if to == "OPEN")
    return (f"ok {c['ok']}, slow {c['slow']}, failed {c['failed']}, rejected {c['rejected']}; "
            f"opened {opened} times; {len(run.transitions)} transitions; final state {run.final_state}")


def breaker_panel(seed: int = 0, **defaults):
    """Sliders + a FigureWidget re-simulated on every change. Returns the container widget.

    The container has ``.figure`` (the FigureWidget), ``.sliders`` (name -> slider),
    ``.summary`` (an HTML widget with the counts) and ``.run`` (the last BreakerRun).
    """
    import ipywidgets as widgets

    values = {**PANEL_DEFAULTS, **defaults}
    specs = {
        "failure_rate": ("failure rate", 0.0, 1.0, 0.05),
        "slow_rate": ("slow-call rate", 0.0, 1.0, 0.05),
        "failure_rate_threshold": ("failure threshold %", 5.0, 100.0, 5.0),
        "slow_call_rate_threshold": ("slow threshold %", 5.0, 100.0, 5.0),
        "window_size": ("window size", 5, 100, 5),
        "wait_duration": ("wait in open (s)", 1.0, 30.0, 1.0),
    }
    sliders = {}
    for name, (label, lo, hi, step) in specs.items():
        cls = widgets.IntSlider if name == "window_size" else widgets.FloatSlider
        slider = cls(value=values[name], min=lo, max=hi, step=step, description=label, continuous_update=False,
                     style={"description_width": "140px"}, layout=widgets.Layout(width="420px"))
        slider.add_class("breaker-panel-slider")
        slider.add_class(f"breaker-panel-{name.replace('_', '-')}")
        sliders[name] = slider
    run = panel_run(seed=seed, **values)
    figure = go.FigureWidget(breaker_figure(run, title="Sliding-window breaker: move a slider"))
    summary = widgets.HTML(value=breaker_panel_text(run))
    summary.add_class("breaker-panel-summary")
    container = widgets.VBox([widgets.HBox([widgets.VBox(list(sliders.values())[:3]),
                                            widgets.VBox(list(sliders.values())[3:])]), summary, figure])
    container.add_class("breaker-panel")
    container.figure, container.sliders, container.summary, container.run = figure, sliders, summary, run

    def redraw(_change=None):
        new = panel_run(seed=seed, **{n: s.value for n, s in sliders.items()})
        fresh = breaker_figure(new, title="Sliding-window breaker: move a slider")
        with figure.batch_update():
            for target, source in zip(figure.data, fresh.data):
                target.x, target.y = source.x, source.y
        summary.value = breaker_panel_text(new)
        container.run = new

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    container.redraw = redraw
    return container


def live_breaker_widget(breaker, *, title: str = "Real service: breaker state as requests flow"):
    """A FigureWidget that appends one point per call outcome of ``breaker`` (subscribes to it)."""
    fig = go.FigureWidget(make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.4, 0.6],
                                        subplot_titles=["breaker state", "cumulative calls"]))
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", line_shape="hv", name="state"), row=1, col=1)
    for outcome in ("ok", "failed", "rejected"):
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=outcome, line=dict(color=OUTCOME_COLORS[outcome])),
                      row=2, col=1)
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=STATE_NAMES, range=[-0.3, 2.3], row=1, col=1)
    fig.update_xaxes(title_text="call number", row=2, col=1)
    fig.update_layout(title=title, height=420)
    counts = {"ok": 0, "failed": 0, "rejected": 0}
    n = [0]
    kinds = {"success": "ok", "error": "failed", "not_permitted": "rejected"}

    def on_event(event):
        outcome = kinds.get(event.kind)
        if outcome is None:
            return
        n[0] += 1
        counts[outcome] += 1
        state = breaker.state
        with fig.batch_update():
            fig.data[0].x = tuple(fig.data[0].x) + (n[0],)
            fig.data[0].y = tuple(fig.data[0].y) + (STATE_Y[state.value if isinstance(state, State) else state],)
            for i, name in enumerate(("ok", "failed", "rejected"), start=1):
                fig.data[i].x = tuple(fig.data[i].x) + (n[0],)
                fig.data[i].y = tuple(fig.data[i].y) + (counts[name],)

    breaker.subscribe(on_event)
    return fig
