"""Chapter 7: AuthorizationPolicy evaluated as Istio does.

Cases come from Istio's reference, istio/api ``security/v1beta1/authorization_policy.proto``
(the text of https://istio.io/latest/docs/reference/config/security/authorization-policy/,
at the commit the vendored CRDs come from, b8f8791d), and from the translation to Envoy
RBAC in istio/istio ``pilot/pkg/security/authz/model/model.go``, ``generator.go`` and
``matcher/{string,header}.go`` (builder test data ``allow-empty-rule-in.yaml`` /
``allow-nil-rule-in.yaml`` for the empty-rule and no-rule cases).
"""

from __future__ import annotations

import pytest
import yaml

from workbook.core.errors import ParameterError
from workbook.mesh import (
    AuthzPolicy,
    AuthzRequest,
    MeshConfigError,
    Workload,
    evaluate_authorization,
    istio_string_match,
    path_template_regex,
)

HTTPBIN = Workload("httpbin", "foo", {"app": "httpbin", "version": "v1"}, "httpbin")
SLEEP = "cluster.local/ns/default/sa/sleep"
TEST_NS = "cluster.local/ns/test/sa/anything"
GOOGLE = {"iss": "https://accounts.google.com"}


def policy(text: str, name="httpbin", namespace="foo") -> AuthzPolicy:
    return AuthzPolicy.from_spec(name, namespace, yaml.safe_load(text))


def decide(policies, request, workload=HTTPBIN, **kw):
    return evaluate_authorization(policies if isinstance(policies, list) else [policies], request, workload, **kw)


# The reference's first example: from sleep OR namespace test; to GET /info* OR POST /data;
# when the JWT issuer is accounts.google.com. "Any other requests will be denied."
REFERENCE_ALLOW = policy("""
action: ALLOW
rules:
- from:
  - source: {principals: ["cluster.local/ns/default/sa/sleep"]}
  - source: {namespaces: ["test"]}
  to:
  - operation: {methods: ["GET"], paths: ["/info*"]}
  - operation: {methods: ["POST"], paths: ["/data"]}
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]
""")


@pytest.mark.parametrize("request_,allowed", [
    (AuthzRequest("GET", "/info", principal=SLEEP, claims=GOOGLE), True),
    (AuthzRequest("GET", "/info/x?y=1", principal=TEST_NS, claims=GOOGLE), True),
    (AuthzRequest("POST", "/data", principal=SLEEP, claims=GOOGLE), True),
    (AuthzRequest("POST", "/info", principal=SLEEP, claims=GOOGLE), False),     # POST only at /data
    (AuthzRequest("GET", "/data", principal=SLEEP, claims=GOOGLE), False),      # GET only at /info*
    (AuthzRequest("GET", "/info", principal=SLEEP), False),                    # no issuer claim
    (AuthzRequest("GET", "/info", principal=SLEEP, claims={"iss": "evil"}), False),
    (AuthzRequest("GET", "/info", principal="cluster.local/ns/prod/sa/sleep", claims=GOOGLE), False),
    (AuthzRequest("GET", "/info", principal=None, claims=GOOGLE), False),      # plaintext: no identity
])
def test_reference_allow_example(request_, allowed):
    d = decide(REFERENCE_ALLOW, request_)
    assert d.allowed is allowed
    if allowed:
        assert (d.action, d.policy, d.rule) == ("ALLOW", "foo/httpbin", 0)
    else:
        assert d.action == "DEFAULT" and "none matches" in d.reason


# "It denies requests from the dev namespace to the POST method on all workloads in foo."
REFERENCE_DENY = policy("""
action: DENY
rules:
- from: [{source: {namespaces: ["dev"]}}]
  to: [{operation: {methods: ["POST"]}}]
""")


@pytest.mark.parametrize("request_,allowed", [
    (AuthzRequest("POST", "/", principal="cluster.local/ns/dev/sa/x"), False),
    (AuthzRequest("GET", "/", principal="cluster.local/ns/dev/sa/x"), True),
    (AuthzRequest("POST", "/", principal="cluster.local/ns/prod/sa/x"), True),
    (AuthzRequest("POST", "/", principal=None), True),   # no identity, so no namespace: not matched
])
def test_reference_deny_example(request_, allowed):
    d = decide(REFERENCE_DENY, request_)
    assert d.allowed is allowed
    assert (d.action, d.policy) == (("DEFAULT", None) if allowed else ("DENY", "foo/httpbin"))


def test_reference_deny_post_on_port_8080():
    p = policy("""
action: DENY
rules:
- to: [{operation: {methods: ["POST"], ports: ["8080"]}}]
""")
    assert not decide(p, AuthzRequest("POST", "/", port=8080))
    assert decide(p, AuthzRequest("POST", "/", port=9090))
    assert decide(p, AuthzRequest("GET", "/", port=8080))


def test_reference_tcp_deny_treats_http_attributes_as_matches():
    # "When this rule is applied to TCP traffic, the method field ... cannot be processed. For a DENY
    # rule, missing attributes are treated as matches. This means all TCP traffic on port 8080 would be
    # denied in the example above."
    p = policy("action: DENY\nrules:\n- to: [{operation: {methods: [POST], ports: ['8080']}}]\n")
    assert not decide(p, AuthzRequest(protocol="tcp", port=8080))
    assert decide(p, AuthzRequest(protocol="tcp", port=9090))
    # ... and an ALLOW rule that needs an HTTP attribute never matches TCP traffic
    allow = policy("rules:\n- from: [{source: {principals: ['*']}}]\n  to: [{operation: {methods: [GET]}}]\n")
    assert not decide(allow, AuthzRequest(protocol="tcp", principal=SLEEP))
    assert decide(allow, AuthzRequest("GET", principal=SLEEP))
    tcp_allow = policy("rules:\n- from: [{source: {principals: ['*']}}]\n  to: [{operation: {ports: ['8080']}}]\n")
    assert decide(tcp_allow, AuthzRequest(protocol="tcp", principal=SLEEP))


def test_reference_allow_nothing_allow_all_and_selectors():
    nothing = policy("{}", "allow-nothing")          # no rules: matches nothing, so ALLOW denies all
    everything = policy("rules:\n- {}\n", "allow-all")
    assert not decide(nothing, AuthzRequest())
    assert decide(everything, AuthzRequest())
    assert decide([nothing, everything], AuthzRequest()).policy == "foo/allow-all"
    # selector app: httpbin in namespace bar: not our workload (it is in foo)
    bar = policy("selector: {matchLabels: {app: httpbin}}\n", "allow-nothing", "bar")
    assert decide(bar, AuthzRequest()).reason == "no ALLOW policy applies to the workload"
    # root namespace, selector version: v1: applies in every namespace
    root = policy("selector: {matchLabels: {version: v1}}\n", "allow-nothing", "istio-system")
    assert not decide(root, AuthzRequest())
    assert decide(root, AuthzRequest(), Workload("w", "foo", {"version": "v2"}))


def test_deny_wins_over_allow_and_custom_comes_first():
    allow_all = policy("rules:\n- {}\n", "allow-all")
    deny_admin = policy("action: DENY\nrules:\n- to: [{operation: {paths: ['/admin*']}}]\n", "deny-admin")
    custom = policy("action: CUSTOM\nprovider: {name: my-custom-authz}\n"
                    "rules:\n- to: [{operation: {paths: ['/admin/*']}}]\n", "ext-authz")
    req = AuthzRequest("GET", "/admin/x")
    d = decide([allow_all, deny_admin], req)
    assert (d.allowed, d.action, d.policy) == (False, "DENY", "foo/deny-admin")
    d = decide([allow_all, deny_admin, custom], req, providers={"my-custom-authz": lambda r: False})
    assert (d.action, d.policy) == ("CUSTOM", "foo/ext-authz")
    d = decide([allow_all, custom], req, providers={"my-custom-authz": lambda r: True})
    assert (d.allowed, d.action) == (True, "ALLOW")          # the extension cannot bypass ALLOW/DENY
    d = decide([allow_all, custom], req)                    # unknown provider: deny
    assert not d and "not defined" in d.reason


def test_audit_never_decides():
    audit = policy("action: AUDIT\nrules:\n- to: [{operation: {methods: [GET], paths: ['/user/profile/*']}}]\n",
                   "anyname")
    d = decide(audit, AuthzRequest("GET", "/user/profile/1"))
    assert d.allowed and d.audited == ("foo/anyname",) and d.action == "DEFAULT"


def test_source_fields_anded_values_ored():
    # the reference's Source example: principal admin or dev AND namespace prod or test AND ip not 203.0.113.4
    p = policy("""
rules:
- from:
  - source:
      principals: ["cluster.local/ns/prod/sa/admin", "cluster.local/ns/test/sa/dev"]
      namespaces: ["prod", "test"]
      notIpBlocks: ["203.0.113.4"]
""")
    assert decide(p, AuthzRequest(principal="cluster.local/ns/prod/sa/admin", source_ip="10.0.0.1"))
    assert decide(p, AuthzRequest(principal="cluster.local/ns/test/sa/dev", source_ip="10.0.0.1"))
    assert not decide(p, AuthzRequest(principal="cluster.local/ns/prod/sa/admin", source_ip="203.0.113.4"))
    assert not decide(p, AuthzRequest(principal="cluster.local/ns/prod/sa/other"))


def test_operation_example_hosts_methods_not_paths():
    # the reference's Operation example: host suffix .example.com AND GET/HEAD AND path not /admin*
    p = policy("rules:\n- to: [{operation: {hosts: ['*.example.com'], methods: [GET, HEAD], notPaths: ['/admin*']}}]\n")
    assert decide(p, AuthzRequest("GET", "/x", host="shop.EXAMPLE.com"))   # hosts: case-insensitive
    assert decide(p, AuthzRequest("HEAD", "/x", host="a.example.com"))
    assert not decide(p, AuthzRequest("GET", "/admin/x", host="a.example.com"))
    assert not decide(p, AuthzRequest("POST", "/x", host="a.example.com"))
    assert not decide(p, AuthzRequest("GET", "/x", host="example.org"))


@pytest.mark.parametrize("pattern,value,expected", [
    ("abc", "abc", True), ("abc", "abcd", False),
    ("abc*", "abc", True), ("abc*", "abcd", True), ("abc*", "xabc", False),
    ("*abc", "abc", True), ("*abc", "xabc", True), ("*abc", "abcx", False),
    ("*", "x", True), ("*", "", False), ("*", None, False),
])
def test_reference_string_matching(pattern, value, expected):
    assert istio_string_match(pattern, value) is expected


@pytest.mark.parametrize("template,path,expected", [
    ("/foo/{*}", "/foo/bar", True), ("/foo/{*}", "/foo/bar/baz", False),
    ("/foo/{**}/", "/foo/bar/", True), ("/foo/{**}/", "/foo//", True), ("/foo/{**}/", "/foo/bar", False),
    ("/foo/{*}/bar/{**}", "/foo/buzz/bar/", True), ("/foo/{*}/bar/{**}", "/foo/buzz/bar/baz", True),
])
def test_reference_path_templates(template, path, expected):
    assert (path_template_regex(template).fullmatch(path) is not None) is expected


def test_principals_wildcard_and_not_principals_for_plaintext():
    any_identity = policy("rules:\n- from: [{source: {principals: ['*']}}]\n")
    assert decide(any_identity, AuthzRequest(principal=SLEEP))
    assert not decide(any_identity, AuthzRequest(principal=None))
    # a DENY with notPrincipals ["*"] refuses requests without an identity
    deny_plain = policy("action: DENY\nrules:\n- from: [{source: {notPrincipals: ['*']}}]\n")
    assert not decide(deny_plain, AuthzRequest(principal=None))
    assert decide(deny_plain, AuthzRequest(principal=SLEEP))


def test_when_conditions_headers_principal_namespace_claims():
    p = policy("""
rules:
- when:
  - {key: "request.headers[X-Version]", values: ["v2*"]}
  - {key: source.principal, values: ["*/sa/sleep"]}
  - {key: source.namespace, notValues: ["dev"]}
  - {key: "request.auth.claims[groups]", values: ["admins"]}
  - {key: "request.auth.claims[realm][role]", values: ["owner"]}
""")
    ok = AuthzRequest(headers={"x-version": "v2.1"}, principal=SLEEP,
                      claims={"groups": ["users", "admins"], "realm": {"role": "owner"}})
    assert decide(p, ok)
    for bad in [dict(headers={"x-version": "v1"}), dict(principal="cluster.local/ns/dev/sa/sleep"),
                dict(principal="cluster.local/ns/default/sa/other"),
                dict(claims={"groups": ["users"], "realm": {"role": "owner"}}),
                dict(claims={"groups": ["admins"], "realm": {"role": "guest"}})]:
        fields = {"headers": ok.headers, "principal": ok.principal, "claims": ok.claims, **bad}
        assert not decide(p, AuthzRequest(**fields)), bad


def test_header_star_is_presence_and_not_values_hold_when_absent():
    present = policy("rules:\n- when: [{key: 'request.headers[x-user-id]', values: ['*']}]\n")
    assert decide(present, AuthzRequest(headers={"x-user-id": ""}))     # present_match, even empty
    assert not decide(present, AuthzRequest())
    not_empty = policy("rules:\n- when: [{key: 'request.headers[x-user-id]', notValues: ['']}]\n")
    assert decide(not_empty, AuthzRequest())                            # absent header: notValues holds
    assert not decide(not_empty, AuthzRequest(headers={"x-user-id": ""}))


def test_service_accounts_default_to_the_policy_namespace():
    p = policy("rules:\n- from: [{source: {serviceAccounts: [sleep, 'default/curl']}}]\n")
    assert decide(p, AuthzRequest(principal="cluster.local/ns/foo/sa/sleep"))
    assert decide(p, AuthzRequest(principal="cluster.local/ns/default/sa/curl"))
    assert not decide(p, AuthzRequest(principal=SLEEP))                  # sleep, but in default


def test_request_principals():
    p = policy("rules:\n- from: [{source: {requestPrincipals: ['https://issuer.example/*']}}]\n")
    assert decide(p, AuthzRequest(request_principal="https://issuer.example/alice"))
    assert not decide(p, AuthzRequest(request_principal="https://other.example/alice"))
    assert not decide(p, AuthzRequest())
    # generator.go: "iss*" is a prefix of the issuer with any subject, "*sub" a suffix of the subject
    by_issuer = policy("rules:\n- from: [{source: {requestPrincipals: ['issuer*']}}]\n")
    assert decide(by_issuer, AuthzRequest(request_principal="issuer.example/alice"))
    # ... but Istio splits a pattern at its LAST "/": "https://issuer*" means issuer "https:/", subject "issuer*"
    by_url = policy("rules:\n- from: [{source: {requestPrincipals: ['https://issuer*']}}]\n")
    assert not decide(by_url, AuthzRequest(request_principal="https://issuer.example/alice"))
    by_subject = policy("rules:\n- from: [{source: {requestPrincipals: ['*alice']}}]\n")
    assert decide(by_subject, AuthzRequest(request_principal="https://issuer.example/alice"))
    assert not decide(by_subject, AuthzRequest(request_principal="https://issuer.example/bob"))
    anyone = policy("rules:\n- from: [{source: {requestPrincipals: ['*']}}]\n")
    assert decide(anyone, AuthzRequest(request_principal="https://issuer.example/bob"))
    assert not decide(anyone, AuthzRequest())


@pytest.mark.parametrize("spec,element", [
    ("action: PERMIT\n", "spec.action"),
    ("rules:\n- when: [{key: 'request.header[x]', values: [a]}]\n", r"when\[0\].key"),
    ("rules:\n- when: [{key: source.principal}]\n", r"when\[0\]"),
    ("rules:\n- to: [{operation: {method: [GET]}}]\n", "operation.method"),
    ("rules:\n- {from: [], tos: []}\n", "rules\\[0\\].tos"),
    ("rules:\n- from: [{source: 7}]\n", r"from\[0\]\.source"),
    ("rules:\n- from: [{source: {principals: sleep}}]\n", "source.principals"),
    ("rules:\n- to: 5\n", r"rules\[0\]\.to"),
    ("rules:\n- when: [{key: source.principal, values: [1]}]\n", r"when\[0\]\.values"),
    ("selector: {matchLabels: 5}\n", "spec.selector.matchLabels"),
    ("rules: {a: 1}\n", "spec.rules"),
    ("7\n", "spec"),
])
def test_bad_policies_name_the_field(spec, element):
    with pytest.raises(MeshConfigError, match=element):
        policy(spec)


@pytest.mark.parametrize("kwargs,name", [
    ({"protocol": "udp"}, "protocol"), ({"port": 70000}, "port"),
    ({"principal": "spiffe://cluster.local/ns/a/sa/b"}, "principal"),
])
def test_bad_requests_name_the_parameter(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        AuthzRequest(**kwargs)
