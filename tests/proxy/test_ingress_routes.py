"""Ingress rule matching: hosts (exact, wildcard, none), path types, precedence, default backend."""

from __future__ import annotations

from kubelite.proxy.ingress_routes import RouteTable, normalize_host, path_elements, prefix_matches


def ing(name, rules=(), default=None, created="2024-01-01T00:00:00Z", ns="default"):
    spec = {"rules": [{"host": h, "http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}}
        for p, t, s in paths]}} if h is not None else {"http": {"paths": [
            {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"name": "http"}}}}
            for p, t, s in paths]}} for h, paths in rules]}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created}, "spec": spec}


def svc_of(table, host, path):
    b = table.match(host, path)
    return b.service if b else None


def test_prefix_is_element_wise():
    # the table of the Ingress documentation
    cases = [("/", "/anything", True), ("/foo", "/foo", True), ("/foo", "/foo/", True), ("/foo/", "/foo", True),
             ("/aaa/bb", "/aaa/bbb", False), ("/aaa/bbb", "/aaa/bbbxyz", False), ("/aaa/bbb", "/aaa/bbb/ccc", True),
             ("/aaa/bbb/", "/aaa/bbb", True)]
    for rule, request, expected in cases:
        assert prefix_matches(path_elements(rule), path_elements(request)) is expected, (rule, request)


def test_exact_longest_and_precedence():
    t = RouteTable.build([ing("a", [("foo.bar.com", [("/", "Prefix", "root"), ("/foo", "Exact", "exact"),
                                                      ("/foo", "Prefix", "prefix"), ("/foo/bar", "Prefix", "deep")])])])
    assert svc_of(t, "foo.bar.com", "/foo") == "exact"  # Exact beats Prefix of the same length
    assert svc_of(t, "foo.bar.com", "/foo/") == "prefix"
    assert svc_of(t, "foo.bar.com", "/foo/bar/baz") == "deep"  # longest wins
    assert svc_of(t, "foo.bar.com", "/foobar") == "root"
    assert svc_of(t, "FOO.bar.com:8080", "/x") == "root"  # host case and port do not matter
    assert svc_of(t, "other.com", "/x") is None  # → 404


def test_hosts_wildcards_and_default_backend():
    t = RouteTable.build([
        ing("old", [("*.foo.com", [("/", "Prefix", "wild")]), (None, [("/", "ImplementationSpecific", "any")])],
            default="fallback", created="2024-01-01T00:00:00Z"),
        ing("new", [("bar.foo.com", [("/api", "Prefix", "api")]), ("*.foo.com", [("/", "Prefix", "wild2")])],
            default="newer-default", created="2024-06-01T00:00:00Z"),
    ])
    assert svc_of(t, "bar.foo.com", "/api/v1") == "api"
    assert svc_of(t, "bar.foo.com", "/other") == "fallback"  # a host of its own: no fall-through to *. rules
    assert svc_of(t, "baz.foo.com", "/") == "wild"  # the older Ingress wins a tie
    assert svc_of(t, "a.baz.foo.com", "/") == "any"  # a wildcard covers one label only
    assert svc_of(t, "foo.com", "/") == "any"
    assert svc_of(t, "elsewhere", "/x") == "any"
    b = t.match("elsewhere", "/x")
    assert (b.namespace, b.port, b.ingress) == ("default", "http", "default/old")
    t2 = RouteTable.build([ing("d", default="only")])
    assert svc_of(t2, "x", "/") == "only"


def test_normalize_host():
    assert normalize_host("Example.COM:80") == "example.com"
    assert normalize_host("[::1]:8080") == "::1"
    assert normalize_host("example.com.") == "example.com"
