"""Figures and widgets for the notebooks. Pattern code never imports this package."""

from workbook.viz.notebook import setup_notebook

__all__ = ["setup_notebook"]
