"""Notebook set-up shared by every chapter: deterministic, comparable outputs."""

from __future__ import annotations

import os


def setup_notebook(template: str = "plotly_white") -> None:
    """Use plotly's MIME renderer (deterministic JSON that nbval compares) and a fixed template.

    Call once in a notebook's first code cell. ``VSCODE_PID`` or a stray
    ``PLOTLY_RENDERER`` would otherwise switch to renderers with random div ids.
    """
    import plotly.io as pio

    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    pio.renderers.default = "plotly_mimetype"
    pio.templates.default = template
