"""Chapter 7's lab: the article's policies over the grid, the exercise checker, the mTLS matrix."""

from __future__ import annotations

import asyncio

import pytest

from workbook.core.resources import data_path
from workbook.core.verdict import Verdict
from workbook.labs.ch07_mesh import (
    admissions_by_rule,
    authorization_rows,
    check_authorization_answer,
    compare_policies,
    model_answer,
    mtls_mode_matrix,
    naive_answers,
    request_grid,
    rotation_run,
    unintended_admissions,
    validation_rows,
)
from workbook.mesh import AuthzPolicy


def test_validation_rows_of_both_versions():
    article = validation_rows("article")
    assert [(r["check"], r["severity"], r["path"]) for r in article] == [
        ("schema", "warning", "spec.trafficPolicy.loadBalancer.simple"),
        ("schema", "warning", "spec.trafficPolicy.outlierDetection.consecutiveErrors"),
        ("schema", "error", "spec.trafficPolicy.circuitBreaker"),
        ("analyze", "error", "spec.http[1].route[1].destination.host"),
    ]
    assert validation_rows("corrected") == []
    with pytest.raises(ValueError, match="version"):
        validation_rows("latest")


def test_the_article_lets_in_what_its_author_meant_to_refuse():
    grid = request_grid()
    assert len(grid) == 216
    numbers = compare_policies()
    assert numbers["article"]["user-service"] == {"requests": 108, "intended_allows": 4, "allowed": 66,
                                                  "wrongly_allowed": 62, "wrongly_denied": 0}
    assert numbers["article"]["order-service"] == {"requests": 108, "intended_allows": 12, "allowed": 96,
                                                   "wrongly_allowed": 84, "wrongly_denied": 0}
    for target in ("user-service", "order-service"):
        assert numbers["corrected"][target]["wrongly_allowed"] == numbers["corrected"][target]["wrongly_denied"] == 0
    # each of the three ORed rules of each policy lets requests in on its own
    assert admissions_by_rule() == {
        "default/order-service-authz rule 0": 42, "default/order-service-authz rule 1": 18,
        "default/order-service-authz rule 2": 24, "default/user-service-authz rule 0": 23,
        "default/user-service-authz rule 1": 18, "default/user-service-authz rule 2": 21}
    rows = unintended_admissions()
    # a plaintext client (no identity at all) reading a user, let in by the `to` rule alone
    assert {"target": "user-service", "caller": "plaintext", "method": "GET", "path": "/api/users/42",
            "header": "(absent)", "intended": "DENY", "decision": "ALLOW",
            "decided_by": "default/user-service-authz rule 1"} in rows
    # anybody with any bearer token may DELETE the admin path
    assert any(r["caller"] == "payment-service" and r["method"] == "DELETE" and r["path"] == "/admin/users"
               and r["decided_by"] == "default/user-service-authz rule 2" for r in rows)


def test_authorization_rows_accept_any_policy_set():
    rows = authorization_rows([AuthzPolicy.from_spec("deny-all", "default", {"rules": [{}], "action": "DENY"})])
    assert {r["decision"] for r in rows} == {"DENY"}


def test_the_model_answer_and_the_corrected_file_pass():
    assert check_authorization_answer(model_answer())
    # the corrected file's policies, without its PeerAuthentication
    text = data_path("mesh", "corrected", "security.yaml").read_text().split("---", 1)[1]
    verdict = check_authorization_answer(text)
    assert isinstance(verdict, Verdict) and verdict.passed, str(verdict)


def test_another_right_answer_passes():
    # a DENY policy for everything outside the API, then ALLOW rules: a different but right answer
    answer = model_answer() + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-outside-api, namespace: default}
spec:
  action: DENY
  rules:
  - to:
    - operation: {notPaths: ["/api/*"]}
"""
    assert check_authorization_answer(answer)


NAIVE = naive_answers()


def test_every_naive_answer_has_a_test():
    assert set(NAIVE) == set(EXPECTED)


EXPECTED = {
    # name -> (failed check, words the hint must contain)
    "the article's rules (from, to, when ORed)": ("user-service: every request decided as intended", "ORed"),
    "rules merged, header condition dropped": ("user-service: every request decided as intended", "rule 0 lets in"),
    "paths miss the collection (/api/users/* only)": ("user-service: every request decided as intended",
                                                     "'/api/users/*' does not match"),
    "header check by presence only (values ['*'])": ("user-service: every request decided as intended", "presence"),
    "x-user-id checked with notValues [''] alone": ("order-service: every request decided as intended",
                                                   "GET /api/orders (absent)"),
    "conditions split into separate ALLOW policies": ("user-service: every request decided as intended",
                                                     "default/user-from"),
    "DENY instead of ALLOW": ("order-service: every request decided as intended", "no ALLOW policy applies"),
    "empty policies (spec: {})": ("user-service: every request decided as intended", "without rules matches nothing"),
    "exact header value 'Bearer'": ("user-service: every request decided as intended", "exact match"),
    "selector that selects nothing (app: users)": ("every policy selects a workload", "selector"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_naive_answer_is_rejected_with_a_reason(name):
    verdict = check_authorization_answer(NAIVE[name])
    failed, words = EXPECTED[name]
    assert not verdict
    assert failed in [c.name for c in verdict.failures], str(verdict)
    assert words in verdict.hint or any(words in c.detail for c in verdict.checks), str(verdict)


@pytest.mark.parametrize("answer,reason", [
    ("kind: [", "valid YAML"),
    (42, "TypeError"),
    ("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: x}\nspec: {}\n",
     "AuthorizationPolicy documents only"),
    ("", "no AuthorizationPolicy"),
])
def test_unjudgeable_answers_are_rejected_not_raised(answer, reason):
    verdict = check_authorization_answer(answer)
    assert not verdict and reason in verdict.checks[0].detail


def test_schema_errors_in_an_answer_fail_the_schema_check():
    verdict = check_authorization_answer(model_answer().replace("action: ALLOW", "action: PERMIT", 1))
    assert not verdict and verdict.checks[0].name == "answer can be judged"     # PERMIT is no action
    verdict = check_authorization_answer(model_answer().replace("    to:\n", "    too: []\n    to:\n", 1))
    assert not verdict


def test_mtls_mode_matrix_and_rotation_run():
    rows = asyncio.run(asyncio.wait_for(mtls_mode_matrix(), 60))
    table = {(r["mode"], r["client"]): (r["outcome"], r["refused_because"]) for r in rows}
    assert len(table) == 12
    assert table[("STRICT", "plaintext")][1] == "plaintext under STRICT (mutual TLS required)"
    assert table[("STRICT", "mesh mTLS (api-gateway)")][0] == "200 peer=cluster.local/ns/default/sa/api-gateway"
    assert "another CA" in table[("STRICT", "certificate from another CA")][1]
    assert table[("PERMISSIVE", "expired certificate")][1] == "certificate has expired"
    assert table[("PERMISSIVE", "plaintext")][0] == "200 peer=(none: plaintext)"
    assert table[("DISABLE", "mesh mTLS (api-gateway)")][1] == "TLS under DISABLE (plaintext only)"
    run = asyncio.run(asyncio.wait_for(rotation_run(calls=30, rotations=4), 60))
    assert run["statuses"] == {"200": 30} and run["refused_connections"] == 0
    assert run["server_rotations"] + run["client_rotations"] >= 2
