"""Loading capability catalogues: the bundled ones, and every kind of bad input."""

import pytest

from workbook.core.errors import ConfigError
from workbook.decomposition import Catalog, catalog_from_records, load_catalog

ARTICLE_NAMES = ("user_management", "order_processing", "product_catalog", "payment_processing",
              "notification_service")


def record(name, **fields):
    base = {"name": name, "description": f"{name} capability", "entities": [name.title()],
            "operations": [f"do_{name}"], "dependencies": [], "team": "team_a", "complexity": 2}
    base.update(fields)
    return base


def test_article_catalogue_has_the_articles_five_capabilities_in_order():
    cat = load_catalog("article_five")
    assert cat.names == ARTICLE_NAMES
    order = cat["order_processing"]
    assert order.dependencies == ("user_management", "product_catalog", "payment_processing")
    assert order.entities == ("Order", "OrderItem", "OrderStatus")
    assert [c.complexity for c in cat] == [3, 5, 4, 6, 2]
    assert len({c.team for c in cat}) == 5


def test_ecommerce_catalogue_is_large_and_shares_entities():
    cat = load_catalog("ecommerce")
    assert len(cat) >= 20
    users = {}
    for cap in cat:
        for entity in cap.entities:
            users.setdefault(entity, []).append(cap.name)
    shared = {e: caps for e, caps in users.items() if len(caps) > 1}
    assert len(shared) >= 5
    assert set(shared["Order"]) == {"checkout", "order_management"}
    assert len({c.team for c in cat}) >= 6


def test_load_by_path_equals_load_by_name(tmp_path):
    from workbook.decomposition import DATA_DIR
    assert load_catalog(DATA_DIR / "article_five.yaml") == load_catalog("article_five")


def test_unknown_catalogue_name_lists_the_bundled_ones():
    with pytest.raises(ConfigError, match="ecommerce"):
        load_catalog("no_such_catalogue")


@pytest.mark.parametrize(
    "records, must_mention",
    [
        ([record("a", dependencies=["b"])], ["'a'", "dependencies", "'b'"]),
        ([record("a"), record("a")], ["'a'", "name", "capabilities[0]"]),
        ([record("a", complexity=-1)], ["'a'", "complexity", "-1"]),
        ([record("a", complexity=0)], ["'a'", "complexity"]),
        ([record("a", complexity=2.5)], ["'a'", "complexity"]),
        ([record("a", complexity=True)], ["'a'", "complexity"]),
        ([record("a", entities=[])], ["'a'", "entities", "non-empty"]),
        ([record("a", operations=[])], ["'a'", "operations", "non-empty"]),
        ([record("a", entities="Order")], ["'a'", "entities", "list"]),
        ([record("a", entities=["Order", "Order"])], ["'a'", "entities", "Order"]),
        ([record("a", dependencies=["a"])], ["'a'", "dependencies", "itself"]),
        ([record("a", team="")], ["'a'", "team"]),
        ([record("a", owner="x")], ["'a'", "owner"]),
        ([{k: v for k, v in record("a").items() if k != "team"}], ["'a'", "team", "present"]),
        ([record("A b")], ["name", "lower_snake_case"]),
        ([], ["capabilities", "at least one"]),
    ],
)
def test_bad_records_name_the_capability_and_the_field(records, must_mention):
    with pytest.raises(ConfigError) as info:
        catalog_from_records(records, source="crafted")
    message = str(info.value)
    assert message.startswith("crafted: ")
    for text in must_mention:
        assert text in message, (text, message)


def test_unknown_dependency_is_named_even_after_valid_ones():
    records = [record("a"), record("b", dependencies=["a", "ghost"])]
    with pytest.raises(ConfigError, match=r"capability 'b' \(capabilities\[1\]\), field 'dependencies'.*'ghost'"):
        catalog_from_records(records)


def write(tmp_path, text):
    path = tmp_path / "cat.yaml"
    path.write_text(text)
    return path


def test_duplicate_yaml_key_is_refused_not_overwritten(tmp_path):
    path = write(tmp_path, """catalogue: t
capabilities:
  - name: a
    description: x
    entities: [A]
    entities: [B]
    operations: [op]
    dependencies: []
    team: t
    complexity: 1
""")
    with pytest.raises(ConfigError, match=r"line 6.*each key once.*'entities'"):
        load_catalog(path)


def test_invalid_yaml_reports_the_line(tmp_path):
    path = write(tmp_path, "catalogue: t\ncapabilities:\n  - name: a: b\n")
    with pytest.raises(ConfigError, match="YAML at line 3"):
        load_catalog(path)


def test_unknown_top_level_key_is_refused(tmp_path):
    path = write(tmp_path, "catalogue: t\ncapabilites: []\n")
    with pytest.raises(ConfigError, match="capabilites"):
        load_catalog(path)


def test_without_refuses_to_orphan_a_dependency():
    cat = load_catalog("article_five")
    smaller = cat.without("notification_service")
    assert smaller.names == ARTICLE_NAMES[:4]
    with pytest.raises(ConfigError, match="order_processing.*dependencies.*user_management"):
        cat.without("user_management")


def test_with_changes_is_validated():
    cat = load_catalog("article_five")
    changed = cat.with_changes("notification_service", team="user_team")
    assert changed["notification_service"].team == "user_team"
    assert cat["notification_service"].team == "platform_team"
    with pytest.raises(ConfigError, match="notification_service.*complexity"):
        cat.with_changes("notification_service", complexity=-3)


def test_reordered_keeps_the_capabilities():
    cat = load_catalog("article_five")
    rev = cat.reversed()
    assert rev.names == tuple(reversed(ARTICLE_NAMES))
    assert isinstance(rev, Catalog) and set(rev.capabilities) == set(cat.capabilities)
    with pytest.raises(ConfigError):
        cat.reordered(ARTICLE_NAMES[:4])
