"""Notebook set-up shared by every chapter: deterministic, comparable, small outputs."""

from __future__ import annotations

import os

# plotly's qualitative palette, reused so colours keep their meaning from chapter to chapter
COLORWAY = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF",
            "#FECB52")
GRID = "#e5e9f0"


def workbook_template():
    """A minimal white template: what ``plotly_white`` looks like, in a few hundred bytes.

    A figure stores its template in its JSON, and ``plotly_white`` carries the whole theme
    (about 7 KB per figure, half of every notebook's lines). This one sets only what the
    figures use: white background, light grid, the palette, a readable font.
    """
    import plotly.graph_objects as go

    axis = {"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID, "ticks": "", "automargin": True}
    return go.layout.Template(layout={
        "paper_bgcolor": "white", "plot_bgcolor": "white", "colorway": list(COLORWAY),
        "font": {"color": "#2a3f5f"}, "hovermode": "closest",
        "xaxis": axis, "yaxis": axis, "legend": {"bgcolor": "rgba(255,255,255,0.6)"},
    })


def setup_notebook(template: str = "workbook") -> None:
    """Use plotly's MIME renderer (deterministic JSON that nbval compares) and a small fixed template.

    Call once in a notebook's first code cell. ``VSCODE_PID`` or a stray
    ``PLOTLY_RENDERER`` would otherwise switch to renderers with random div ids.
    ``template`` is ``"workbook"`` (minimal, the default) or any plotly template name.
    """
    import plotly.io as pio

    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    pio.renderers.default = "plotly_mimetype"
    pio.templates["workbook"] = workbook_template()
    pio.templates.default = template
