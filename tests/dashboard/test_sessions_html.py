"""Sessions (lifetime, CSRF comparison) and the escaping HTML builder, without a server."""

from __future__ import annotations

from kubelite.dashboard.html import H, Html, join, labels, table, url
from kubelite.dashboard.kinds import age, pod_status
from kubelite.dashboard.sessions import Sessions, same


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_lifetime_slides_and_ends():
    clock = Clock()
    store = Sessions(ttl=900, clock=clock)
    s = store.create("tok", "alice", [])
    assert len(s.id) >= 40 and s.csrf != s.id
    clock.now += 800
    assert store.get(s.id) is s  # used: lives another 900 s
    clock.now += 800
    assert store.get(s.id) is s
    clock.now += 901
    assert store.get(s.id) is None and len(store) == 0
    assert store.get("") is None and store.get("unknown") is None


def test_ttl_zero_never_expires_and_drop_ends():
    clock = Clock()
    store = Sessions(ttl=0, clock=clock)
    s = store.create("tok", "bob", [])
    clock.now += 10**9
    assert store.get(s.id) is s
    store.drop(s.id)
    assert store.get(s.id) is None


def test_csrf_comparison():
    assert same("abc", "abc")
    assert not same("abc", "abd") and not same("", "") and not same(None, "x")


def test_everything_rendered_is_escaped():
    evil = '<img src=x onerror="alert(1)">'
    out = H("<td>{}</td>", evil)
    assert out == "<td>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</td>"
    assert H("<p>{}</p>", Html("<b>ok</b>")) == "<p><b>ok</b></p>"
    assert "<img" not in join([evil, H("<i>{}</i>", evil)])
    assert "<img" not in labels({"a": evil}) and "<img" not in table(["h"], [[evil]])
    assert url("ns", "a/b", "pods", container="x&y") == "/ns/a%2Fb/pods?container=x%26y"


def test_age_and_pod_status():
    from datetime import UTC, datetime, timedelta

    now = datetime(2024, 1, 10, tzinfo=UTC)
    ts = (now - timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    assert age(ts, now) == "90s"
    assert age((now - timedelta(hours=30)).isoformat(), now) == "30h"
    assert age((now - timedelta(days=3, hours=2)).isoformat(), now) == "3d2h"
    pod = {"metadata": {}, "status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert pod_status(pod) == "ContainerCreating"
    assert pod_status({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}}) == "Terminating"
