"""Route precedence and path normalisation, as tables; the article's matcher shown wrong."""

import pytest

from workbook.core.errors import ParameterError
from workbook.gateway import PathRejected, RouteRule, Router, naive_find_route, normalize_path, segment_prefix

ROUTES = [
    RouteRule("api", "/api", "prefix"),
    RouteRule("users", "/api/users", "prefix", ("GET",)),
    RouteRule("users-create", "/api/users", "prefix", ("POST",)),
    RouteRule("me", "/api/users/me", "exact", ("GET",)),
    RouteRule("user-by-id", r"/api/users/[0-9]+/avatar", "regex"),
    RouteRule("any-avatar", r"/api/.*/avatar", "regex"),
    RouteRule("admin", "/api/admin", "prefix", ("GET", "DELETE")),
    RouteRule("root", "/", "prefix", ("GET",)),
    RouteRule("shop-host", "/api/users", "exact", ("GET",), host="shop.example"),
]


@pytest.mark.parametrize("method,path,host,expected", [
    ("GET", "/api/users", None, "users"),                  # prefix equal to the path
    ("GET", "/api/users/", None, "users"),
    ("GET", "/api/users/42", None, "users"),
    ("GET", "/api/usersettings", None, "api"),             # NOT users: not a segment boundary
    ("GET", "/api/users-internal", None, "api"),
    ("POST", "/api/users/42", None, "users-create"),        # same path, the method picks the rule
    ("GET", "/api/users/me", None, "me"),                  # exact beats every prefix
    ("GET", "/api/users/me/", None, "users"),              # exact means exact
    ("GET", "/api/users/7/avatar", None, "users"),         # a prefix beats every regex
    ("GET", "/api/x/avatar", None, "api"),
    ("GET", "/other", None, "root"),
    ("GET", "/api/users", "shop.example", "shop-host"),   # an exact route of this host
    ("GET", "/api/users", "shop.example:8080", "shop-host"),
    ("HEAD", "/api/users/1", None, "users"),               # HEAD is allowed where GET is
])
def test_precedence_table(method, path, host, expected):
    found = Router(ROUTES).match(method, path, host)
    assert found.rule is not None and found.rule.name == expected


def test_regex_routes_in_order_when_nothing_else_matches():
    router = Router([RouteRule("a", r"/img/[0-9]+\.png", "regex"), RouteRule("b", r"/img/.*", "regex")])
    assert router.match("GET", "/img/12.png").rule.name == "a"
    assert router.match("GET", "/img/x.png").rule.name == "b"
    assert router.match("GET", "/img").rule is None              # fullmatch, not search


def test_a_method_not_allowed_is_405_and_never_falls_through_to_a_less_specific_route():
    found = Router(ROUTES).match("PUT", "/api/admin/users")
    assert found.rule is None and found.allowed == ("DELETE", "GET")   # not the catch-all "api" prefix
    assert Router(ROUTES).match("GET", "/nowhere", None).rule.name == "root"
    assert Router([RouteRule("x", "/x", "exact")]).match("GET", "/y").allowed == ()


def test_longest_prefix_wins_whatever_the_order():
    a = [RouteRule("short", "/a", "prefix"), RouteRule("long", "/a/b", "prefix")]
    assert Router(a).match("GET", "/a/b/c").rule.name == "long"
    assert Router(a[::-1]).match("GET", "/a/b/c").rule.name == "long"


def test_the_article_matcher_routes_usersettings_to_users_and_ours_does_not():
    article_routes = [{"path": "/api/users", "method": "GET", "service_name": "user-service"},
                      {"path": "/api/usersettings", "method": "GET", "service_name": "settings-service"}]
    # the article: startswith, in insertion order
    assert naive_find_route(article_routes, "GET", "/api/usersettings")["service_name"] == "settings-service"
    assert naive_find_route(article_routes[:1], "GET", "/api/usersettings")["service_name"] == "user-service"
    assert naive_find_route(article_routes, "GET", "/api/usersettings/1")["service_name"] == "user-service"
    ours = Router([RouteRule("users", "/api/users"), RouteRule("settings", "/api/usersettings")])
    assert ours.match("GET", "/api/usersettings/1").rule.name == "settings"
    assert Router([RouteRule("users", "/api/users")]).match("GET", "/api/usersettings").rule is None


@pytest.mark.parametrize("prefix,path,expected", [
    ("/api/users", "/api/users", True), ("/api/users", "/api/users/1", True), ("/api/users/", "/api/users/1", True),
    ("/api/users", "/api/usersettings", False), ("/", "/anything", True), ("/api/users", "/api", False),
])
def test_segment_prefix(prefix, path, expected):
    assert segment_prefix(prefix, path) is expected


@pytest.mark.parametrize("raw,expected", [
    ("/api/users", "/api/users"),
    ("/api/public/../admin", "/api/admin"),                    # dot segments (RFC 3986 5.2.4)
    ("/api/public/%2e%2e/admin", "/api/admin"),                # encoded dots are unreserved: decoded first
    ("/api/public/%2E%2E/admin", "/api/admin"),
    ("/api/public/.%2e/admin", "/api/admin"),
    ("/api/./users/./1", "/api/users/1"),
    ("/api//users///1", "/api/users/1"),                       # duplicate slashes merged
    ("/api/public//../admin", "/api/admin"),                   # merged before the dots
    ("/../../etc/passwd", "/etc/passwd"),                      # never above the root
    ("/a/b/..", "/a/"), ("/a/b/.", "/a/b/"), ("/.", "/"), ("/..", "/"),
    ("/%7Euser/%41%62c", "/~user/Abc"),                        # unreserved decoded
    ("/a%20b", "/a%20b"), ("/a%3fb", "/a%3Fb"),                 # reserved or other: kept, hex upper-cased
    ("/x/%252e%252e/admin", "/x/%252e%252e/admin"),            # %25 never decoded: no double decoding
    ("/api/users/", "/api/users/"),                            # trailing slash kept
    ("/a;b=c/@:!$&'()*+,", "/a;b=c/@:!$&'()*+,"),              # sub-delims and pchar kept
])
def test_normalisation_table(raw, expected):
    assert normalize_path(raw) == expected


@pytest.mark.parametrize("raw,why", [
    ("/a%2Fb", "encoded slash"), ("/a%2fb", "encoded slash"), ("/a%00b", "NUL"), ("/a%5Cb", "backslash"),
    ("/a\\b", "not allowed"), ("/a b", "not allowed"), ("/a%zz", "malformed"), ("/a%2", "malformed"), ("/a%", "malformed"),
    ("api/users", "origin-form"), ("*", "origin-form"), ("http://evil/x", "origin-form"), ("/caf\u00e9", "not allowed"),
    ("/a\x00b", "not allowed"), ("/" + "a" * 5000, "characters"),
])
def test_paths_refused(raw, why):
    with pytest.raises(PathRejected, match=why):
        normalize_path(raw)


def test_encoded_slash_policy_keep():
    assert normalize_path("/a%2fb/../c", encoded_slash="keep") == "/c"   # one segment "a%2Fb", removed by ".."
    assert normalize_path("/a%2fb", encoded_slash="keep") == "/a%2Fb"
    with pytest.raises(ParameterError, match="encoded_slash"):
        normalize_path("/a", encoded_slash="decode")


@pytest.mark.parametrize("attack", ["/api/public/../admin/users", "/api/public/%2e%2e/admin/users",
                                    "/api/public/%2E./admin/users", "/api//public/..//admin/users",
                                    "/api/public/./../admin/users"])
def test_no_path_slips_past_the_admin_rule(attack):
    router = Router([RouteRule("public", "/api/public"), RouteRule("admin", "/api/admin")])
    assert router.match("GET", normalize_path(attack)).rule.name == "admin"
    # the raw path would have been routed to the open route by the article's startswith matcher
    assert naive_find_route([{"method": "GET", "path": "/api/public"}, {"method": "GET", "path": "/api/admin"}],
                            "GET", attack.replace("//", "/"))["path"] == "/api/public"
