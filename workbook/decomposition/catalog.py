"""Load and validate a catalogue of business capabilities (YAML in ``data/decomposition``).

File format::

    catalogue: ecommerce            # a name
    description: ...                # optional
    capabilities:
      - name: checkout              # unique, lower_snake_case
        description: ...
        entities: [Cart, Order]     # non-empty, distinct
        operations: [start_checkout]
        dependencies: [payment_processing]   # names of capabilities in this file
        team: ordering_team
        complexity: 5               # an integer >= 1

Every field of a capability is required and no other field is accepted; duplicate keys
in a YAML mapping, duplicate names in a list, unknown dependencies, self-dependencies,
negative or zero complexity are all refused with a ``ConfigError`` that names the file,
the capability (name and index) and the field. Nothing is dropped or defaulted silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from workbook.core.errors import ConfigError
from workbook.core.resources import data_path
from workbook.decomposition.capability import FIELDS, Capability

DATA_DIR = data_path("decomposition")
"""Where the bundled catalogues live (``article_five.yaml``, ``ecommerce.yaml``)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_FIELDS = ("catalogue", "description", "capabilities")
_RENAMED = {"seed_five": "article_five"}  # old bundled names still load (the article was called "the seed")


@dataclass(frozen=True)
class Catalog:
    """An ordered, validated set of capabilities.

    Order is the order of the file: it matters to the article's greedy grouping (which is
    order-dependent, a defect this chapter shows) and to nothing else here.
    """

    name: str
    capabilities: tuple[Capability, ...]
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.capabilities)

    def __len__(self) -> int:
        return len(self.capabilities)

    def __iter__(self):
        return iter(self.capabilities)

    def __getitem__(self, name: str) -> Capability:
        for cap in self.capabilities:
            if cap.name == name:
                return cap
        raise KeyError(name)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def reordered(self, names: Sequence[str]) -> Catalog:
        """The same capabilities in another order (``names`` must be a permutation)."""
        if sorted(names) != sorted(self.names):
            raise ConfigError(self.name, "order", "a permutation of the catalogue's names", list(names))
        return Catalog(self.name, tuple(self[n] for n in names), self.description)

    def reversed(self) -> Catalog:
        return self.reordered(list(reversed(self.names)))

    def without(self, *names: str) -> Catalog:
        """A catalogue without ``names``; refused if a remaining capability depends on one."""
        for n in names:
            if n not in self.names:
                raise ConfigError(self.name, "without", "names of capabilities in the catalogue", n)
        records = [c.as_dict() for c in self.capabilities if c.name not in names]
        return catalog_from_records(records, source=f"{self.name} without {', '.join(names)}", name=self.name)

    def with_changes(self, name: str, **fields) -> Catalog:
        """A catalogue where capability ``name`` has some fields replaced (validated again)."""
        records = [c.as_dict() for c in self.capabilities]
        try:
            i = self.index(name)
        except ValueError:
            raise ConfigError(self.name, "with_changes", "the name of a capability in the catalogue", name) from None
        records[i] = {**records[i], **fields}
        return catalog_from_records(records, source=f"{self.name} (changed {name})", name=self.name)

    def as_dict(self) -> dict:
        return {
            "catalogue": self.name,
            "description": self.description,
            "capabilities": [c.as_dict() for c in self.capabilities],
        }


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(loader.name, f"line {key_node.start_mark.line + 1}",
                              f"each key once in a mapping (first at line {seen[key]})", key)
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_catalog(path_or_name: str | Path) -> Catalog:
    """Load a catalogue from a YAML file, or a bundled one by name (``"ecommerce"``)."""
    path_or_name = _RENAMED.get(str(path_or_name), path_or_name)
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = DATA_DIR / f"{path_or_name}.yaml"
    if not path.exists():
        bundled = sorted(p.stem for p in DATA_DIR.glob("*.yaml"))
        raise ConfigError(path, "file", f"an existing YAML file or a bundled catalogue name {bundled}")
    text = path.read_text(encoding="utf-8")
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)
        try:
            document = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"YAML at line {mark.line + 1}" if mark is not None else "YAML"
        raise ConfigError(path, where, "a valid YAML document", getattr(exc, "problem", None) or str(exc)) from None
    return catalog_from_document(document, source=str(path))


def catalog_from_document(document, source: str = "<catalogue>") -> Catalog:
    """Validate a parsed document (a mapping with ``catalogue`` and ``capabilities``)."""
    if not isinstance(document, Mapping):
        raise ConfigError(source, "document", "a mapping with keys " + ", ".join(_TOP_FIELDS), type(document).__name__)
    unknown = sorted(set(document) - set(_TOP_FIELDS))
    if unknown:
        raise ConfigError(source, "document", "only the keys " + ", ".join(_TOP_FIELDS), unknown)
    for key in ("catalogue", "capabilities"):
        if key not in document:
            raise ConfigError(source, key, "this key to be present")
    name = document["catalogue"]
    if not isinstance(name, str) or not name:
        raise ConfigError(source, "catalogue", "a non-empty string", name)
    description = document.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(source, "description", "a string", description)
    return catalog_from_records(document["capabilities"], source=source, name=name, description=description.strip())


def catalog_from_records(records: Iterable, source: str = "<records>", name: str = "catalogue",
                         description: str = "") -> Catalog:
    """Validate capability records (mappings with exactly the fields of ``Capability``)."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ConfigError(source, "capabilities", "a list of capability mappings", type(records).__name__)
    records = list(records)
    if not records:
        raise ConfigError(source, "capabilities", "at least one capability", [])
    caps: list[Capability] = []
    first_index: dict[str, int] = {}
    for i, record in enumerate(records):
        cap = _capability(record, i, source)
        if cap.name in first_index:
            raise ConfigError(source, _where(cap.name, i, "name"),
                              f"a unique name (already used by capabilities[{first_index[cap.name]}])", cap.name)
        first_index[cap.name] = i
        caps.append(cap)
    for i, cap in enumerate(caps):
        for dep in cap.dependencies:
            if dep == cap.name:
                raise ConfigError(source, _where(cap.name, i, "dependencies"), "other capabilities (not itself)", dep)
            if dep not in first_index:
                raise ConfigError(source, _where(cap.name, i, "dependencies"),
                                  "names of capabilities in this catalogue", dep)
    return Catalog(name, tuple(caps), description)


def _where(name, index, field) -> str:
    return f"capability {name!r} (capabilities[{index}]), field {field!r}"


def _capability(record, index: int, source: str) -> Capability:
    label = record.get("name") if isinstance(record, Mapping) else None
    label = label if isinstance(label, str) and label else f"#{index}"
    if not isinstance(record, Mapping):
        raise ConfigError(source, f"capabilities[{index}]", "a mapping with fields " + ", ".join(FIELDS),
                          type(record).__name__)
    unknown = sorted(str(k) for k in set(record) - set(FIELDS))
    if unknown:
        raise ConfigError(source, f"capability {label!r} (capabilities[{index}])",
                          "only the fields " + ", ".join(FIELDS), unknown)
    for field in FIELDS:
        if field not in record:
            raise ConfigError(source, _where(label, index, field), "this field to be present")
    name = record["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(source, _where(label, index, "name"), "a lower_snake_case identifier", name)
    description = record["description"]
    if not isinstance(description, str):
        raise ConfigError(source, _where(name, index, "description"), "a string", description)
    team = record["team"]
    if not isinstance(team, str) or not team.strip():
        raise ConfigError(source, _where(name, index, "team"), "a non-empty team name", team)
    complexity = record["complexity"]
    if isinstance(complexity, bool) or not isinstance(complexity, int) or complexity < 1:
        raise ConfigError(source, _where(name, index, "complexity"), "an integer >= 1", complexity)
    return Capability(
        name=name,
        description=description.strip(),
        entities=_names(record["entities"], source, name, index, "entities", required=True),
        operations=_names(record["operations"], source, name, index, "operations", required=True),
        dependencies=_names(record["dependencies"], source, name, index, "dependencies", required=False),
        team=team.strip(),
        complexity=complexity,
    )


def _names(value, source, name, index, field, *, required: bool) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(source, _where(name, index, field), "a list of names", value)
    if required and not value:
        raise ConfigError(source, _where(name, index, field), "a non-empty list of names", list(value))
    seen = set()
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(source, _where(name, index, field), "non-empty strings only", item)
        if item in seen:
            raise ConfigError(source, _where(name, index, field), "each name once (no duplicates)", item)
        seen.add(item)
    return tuple(value)
