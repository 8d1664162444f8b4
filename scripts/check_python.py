"""Fail early, with a clear message, when the Python used to create the venv is too old."""
import sys

if sys.version_info < (3, 11):
    sys.exit(f"the workbook needs Python >= 3.11; {sys.executable} is {sys.version.split()[0]}. "
             "Run make with PYTHON=/path/to/python3.11 (or newer).")
