"""Istio resources read from YAML files: what each one is and where it came from.

``load_resources(path)`` reads one multi-document YAML file; ``load_mesh_directory(dir)``
every ``*.yaml`` under a directory (sorted, so the order is reproducible). Each document
becomes a ``MeshResource`` that remembers its file and the line its document starts on,
so every later finding can name both. Invalid YAML raises ``MeshConfigError`` with the
file, line and column the parser stopped at; a document that is not a mapping with
``apiVersion``, ``kind`` and ``metadata.name`` is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbook.mesh.errors import MeshConfigError


@dataclass(frozen=True)
class MeshResource:
    """One Kubernetes-style resource: ``kind``, ``api_version``, name, namespace, the body.

    ``body`` is the whole document as parsed (``apiVersion``, ``kind``, ``metadata``,
    ``spec``); ``source`` the file it came from and ``line`` the document's first line.
    ``duplicates`` lists the keys written twice in one mapping, as (field path, line):
    YAML keeps the last silently, ``kubectl --validate=strict`` refuses them.
    """

    api_version: str
    kind: str
    name: str
    namespace: str
    body: dict[str, Any] = field(repr=False)
    source: str = "<memory>"
    line: int = 1
    duplicates: tuple[tuple[str, int], ...] = ()

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def ref(self) -> str:
        """``Kind namespace/name``: how findings name the resource."""
        return f"{self.kind} {self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.ref}"


def parse_resources(text: str, source: str = "<memory>", *, default_namespace: str = "default") -> list[MeshResource]:
    """The resources of a multi-document YAML text (empty documents are skipped)."""
    loader = yaml.SafeLoader(text)
    found: list[MeshResource] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            line = node.start_mark.line + 1
            duplicates = tuple(_duplicate_keys(node, ""))
            doc = loader.construct_document(node)
            index += 1
            if doc is None:
                continue
            found.append(_resource(doc, source, line, index, default_namespace, duplicates))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc)
        raise MeshConfigError(source, where, "valid YAML", problem) from None
    finally:
        loader.dispose()
    return found


def _duplicate_keys(node: yaml.Node, path: str):
    """(path, line) of every key that appears twice in one mapping of a composed YAML tree."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            child = f"{path}.{name}" if path else name
            if name in seen:
                yield child, key.start_mark.line + 1
            seen.add(name)
            yield from _duplicate_keys(value, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def _resource(doc: Any, source: str, line: int, index: int, default_namespace: str,
              duplicates: tuple[tuple[str, int], ...] = ()) -> MeshResource:
    where = f"document {index} (line {line})"
    if not isinstance(doc, dict):
        raise MeshConfigError(source, where, "a mapping with apiVersion, kind and metadata", type(doc).__name__)
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc.get(key):
            raise MeshConfigError(source, f"{where}: {key}", "a non-empty string", doc.get(key))
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta.get("name"):
        raise MeshConfigError(source, f"{where}: metadata.name", "a non-empty string",
                              meta.get("name") if isinstance(meta, dict) else meta)
    namespace = meta.get("namespace", default_namespace)
    if not isinstance(namespace, str) or not namespace:
        raise MeshConfigError(source, f"{where}: metadata.namespace", "a non-empty string", namespace)
    return MeshResource(doc["apiVersion"], doc["kind"], meta["name"], namespace, doc, source, line, duplicates)


def load_resources(path: str | Path, *, default_namespace: str = "default") -> list[MeshResource]:
    """The resources of one YAML file (``MeshConfigError`` if unreadable or not YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MeshConfigError(path, "file", "a readable YAML file", exc.strerror) from None
    return parse_resources(text, str(path), default_namespace=default_namespace)


def load_mesh_directory(directory: str | Path, *, default_namespace: str = "default") -> list[MeshResource]:
    """Every resource of every ``*.yaml``/``*.yml`` file directly under ``directory``, by file name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MeshConfigError(directory, "directory", "a directory of YAML files")
    files: Iterable[Path] = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    return [r for p in files for r in load_resources(p, default_namespace=default_namespace)]
