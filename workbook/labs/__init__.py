"""One lab per chapter: its experiments, exercise checker and figures.

``workbook.labs.chNN_<name>`` holds what only chapter NN's notebook needs: ``experiments``
(runs that return results with the numbers behind them), ``exercise`` (checkers that
return a ``workbook.core.verdict.Verdict``) and ``figures`` (plotly figures and widget
panels). A lab imports the pattern library and ``workbook.core``, never another lab; the
library never imports a lab. ``notebook.setup_notebook`` is shared by every notebook.
"""

from workbook.labs.notebook import setup_notebook

__all__ = ["setup_notebook"]
