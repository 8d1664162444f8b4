"""Repository per service: versions, copies, errors; the naive repository's aliasing; the naive synchroniser."""

import asyncio

import pytest

from workbook.core import ParameterError, WorkbookError, run_virtual
from workbook.storage import NaiveRepository, NaiveSynchronizer, Repository, StaleVersion


@pytest.fixture
def repo(tmp_path):
    r = Repository(str(tmp_path / "orders.sqlite"), service="orders")
    yield r
    r.close()


def test_save_get_list_delete_with_versions(repo):
    a = repo.save("o1", {"status": "new", "total": 10}, expected_version=0)
    assert (a.id, a.version, a.data) == ("o1", 1, {"status": "new", "total": 10})
    b = repo.save("o1", {"status": "paid", "total": 10}, expected_version=1)
    assert b.version == 2 and repo.get("o1") == b
    repo.save("o2", {"status": "new", "total": 5}, expected_version=0)
    assert [r.id for r in repo.list()] == ["o1", "o2"]
    assert [r.id for r in repo.list({"status": "new"})] == ["o2"]
    repo.delete("o1", expected_version=2)
    assert repo.get("o1") is None and repo.version("o1") == 0


def test_a_stale_save_is_refused_and_named(repo):
    repo.save("o1", {"n": 1}, expected_version=0)
    repo.save("o1", {"n": 2}, expected_version=1)       # writer A wins
    with pytest.raises(StaleVersion) as err:            # writer B read version 1 too
        repo.save("o1", {"n": 3}, expected_version=1)
    assert isinstance(err.value, WorkbookError)
    assert (err.value.record_id, err.value.expected, err.value.actual) == ("o1", 1, 2)
    assert "orders" in str(err.value) and "expected_version=1" in str(err.value)
    assert repo.get("o1").data == {"n": 2}
    with pytest.raises(StaleVersion):
        repo.save("o1", {"n": 9}, expected_version=0)   # creating what exists
    with pytest.raises(StaleVersion):
        repo.delete("o1", expected_version=1)
    with pytest.raises(StaleVersion):
        repo.save("nope", {"n": 1}, expected_version=3)


def test_a_save_copies_and_a_get_returns_fresh_objects(repo):
    order = {"items": [{"sku": "a", "qty": 1}], "status": "new"}
    repo.save("o1", order, expected_version=0)
    order["items"].append({"sku": "b", "qty": 2})
    order["status"] = "mutated"
    got = repo.get("o1")
    got.data["items"].clear()
    assert repo.get("o1").data == {"items": [{"sku": "a", "qty": 1}], "status": "new"}
    assert "id" not in order    # the caller's dict is not written into


def test_each_service_owns_its_own_file(tmp_path):
    users = Repository(str(tmp_path / "users.sqlite"), service="users")
    orders = Repository(str(tmp_path / "orders.sqlite"), service="orders")
    users.save("u1", {"name": "Ada"}, expected_version=0)
    assert orders.get("u1") is None and users.path != orders.path
    reopened = Repository(str(tmp_path / "users.sqlite"), service="users")
    assert reopened.get("u1").data == {"name": "Ada"}


@pytest.mark.parametrize("call,field", [
    (lambda r: r.save("", {}, expected_version=0), "record_id"),
    (lambda r: r.save(3, {}, expected_version=0), "record_id"),
    (lambda r: r.save("x", {}, expected_version=-1), "expected_version"),
    (lambda r: r.save("x", {}, expected_version=None), "expected_version"),
    (lambda r: r.delete("x", expected_version=0), "expected_version"),
])
def test_bad_input_names_the_field(repo, call, field):
    with pytest.raises(ParameterError, match=field):
        call(repo)


def test_bad_data_is_refused_and_nothing_is_written(repo):
    with pytest.raises(TypeError, match="dict"):
        repo.save("x", ["not", "a", "dict"], expected_version=0)
    with pytest.raises(TypeError, match="JSON"):
        repo.save("x", {"f": object()}, expected_version=0)
    assert repo.list() == [] and repo.last_seq == 0


def test_naive_repository_aliases_the_callers_objects():
    naive = NaiveRepository("orders")
    order = {"items": [{"sku": "a"}], "status": "new"}
    oid = naive.save(order)
    assert order["id"] == oid                      # save wrote into the caller's dict
    order["items"].append({"sku": "b"})            # a later mutation of a nested list...
    assert naive.find_by_id(oid)["items"] == [{"sku": "a"}, {"sku": "b"}]   # ...is in the "database"
    naive.find_by_id(oid)["status"] = "shipped"    # a reader edits what it read
    assert naive.find_by_id(oid)["status"] == "shipped"
    # the same steps against the repository change nothing stored
    repo = Repository(service="orders")
    order2 = {"items": [{"sku": "a"}], "status": "new"}
    repo.save("o1", order2, expected_version=0)
    order2["items"].append({"sku": "b"})
    repo.get("o1").data["status"] = "shipped"
    assert repo.get("o1").data == {"items": [{"sku": "a"}], "status": "new"}


def test_naive_repository_loses_an_update():
    naive = NaiveRepository("users")
    uid = naive.save({"name": "Ada", "credit": 100})
    a, b = dict(naive.find_by_id(uid)), dict(naive.find_by_id(uid))
    naive.update(uid, {"credit": a["credit"] - 30})
    naive.update(uid, {"credit": b["credit"] - 50})
    assert naive.find_by_id(uid)["credit"] == 50   # 80 were spent; 30 of them are lost


def test_naive_synchronizer_swallows_errors_and_uses_the_last_rules_level():
    async def main():
        sync = NaiveSynchronizer()
        users, billing, crm = NaiveRepository("users"), NaiveRepository("billing"), NaiveRepository("crm")
        for name, r in (("users", users), ("billing", billing), ("crm", crm)):
            sync.register_repository(name, r)
        sync.add_sync_rule("users", "billing", "UserCreated", lambda d: {"name": d["name"]}, "strong")
        sync.add_sync_rule("users", "crm", "UserCreated", lambda d: {"email": d["email"]}, "eventual")
        uid = users.save({"name": "Ada"})          # no email: the crm mapping raises KeyError
        await sync.sync_data_change("users", "UserCreated", uid, users.find_by_id(uid))
        strong_done_on_return = billing.find_by_id(uid) is not None
        await asyncio.gather(*sync.background)
        return strong_done_on_return, billing.find_by_id(uid), crm.find_by_id(uid), sync.errors

    strong_done, billed, crm_copy, errors = run_virtual(main())
    assert not strong_done            # the "strong" rule was not waited for: the last rule was eventual
    assert billed is not None         # it did complete later, in the background
    assert crm_copy is None and errors == 1   # the crm copy silently never happened


def test_another_connection_cannot_write_behind_the_repositorys_back(tmp_path):
    import sqlite3
    path = str(tmp_path / "users.sqlite")
    repo = Repository(path, service="users")
    repo.save("u1", {"name": "Ada"}, expected_version=0)
    intruder = sqlite3.connect(path)
    with pytest.raises(sqlite3.OperationalError, match="wb_now"):
        intruder.execute("UPDATE records SET data = '{}' WHERE id = 'u1'")
    intruder.close()
    assert repo.get("u1").data == {"name": "Ada"}
