"""Root pytest configuration, so plain ``pytest --nbval`` from the repository root works.

It fixes the hash seed and the plotly renderer *before* any kernel starts (kernels
inherit the environment), so every notebook output is reproducible. The sanitize file
is passed through ``addopts`` in pyproject.toml.
"""

import os

os.environ["PYTHONHASHSEED"] = "0"
os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
os.environ.pop("VSCODE_PID", None)
os.environ.setdefault("WORKBOOK_TESTING", "1")
