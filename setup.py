"""Packaging that pyproject.toml cannot say: the top-level ``data/`` ships in the wheel.

``data/`` stays at the top of the repository, where learners see it; in a wheel it
becomes ``workbook/data/`` (the package ``workbook.data`` mapped onto ``data/``), which
``workbook.core.resources.data_path`` finds with ``importlib.resources``. Everything else
(name, dependencies, package data, the files of ``data/`` included) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

setup(
    packages=find_packages(include=["workbook", "workbook.*"])
    + ["workbook.data"] + [f"workbook.data.{name}" for name in find_namespace_packages(where="data")],
    package_dir={"workbook.data": "data"},
)
