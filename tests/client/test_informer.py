"""Informers: sync, handlers, indexes, shared factory, and the relist after 410 (fake stream and real server)."""

from __future__ import annotations

import asyncio
import copy

import pytest

from client.client_objects import CONFIGMAPS, PODS, cm, pod
from kubelite.client.informer import (
    NAMESPACE_INDEX,
    NODE_NAME_INDEX,
    OWNER_UID_INDEX,
    Informer,
    SharedInformerFactory,
    key_of,
    split_key,
)
from kubelite.client.rest import ApiClient, ClientError


def _obj(name: str, rv: int, ns: str = "n", **data: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)}, "data": data}


class FakeStream:
    def __init__(self, events, end_with=None, hang=False):
        self.events = list(events)
        self.end_with = end_with
        self.hang = hang

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        pass

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.events:
            return self.events.pop(0)
        if self.end_with is not None:
            raise self.end_with
        if self.hang:
            await asyncio.sleep(3600)
        raise StopAsyncIteration


class FakeClient:
    """Scripted lists and watches; records the resourceVersion each watch started from."""

    def __init__(self, lists, streams):
        self.lists = list(lists)
        self.streams = list(streams)
        self.watch_rvs: list[str] = []

    async def list(self, rt, namespace=None, **kw):
        items, rv = self.lists.pop(0)
        return {"items": copy.deepcopy(items), "metadata": {"resourceVersion": str(rv)}}

    def watch(self, rt, namespace=None, *, resource_version=None, **kw):
        self.watch_rvs.append(resource_version)
        return self.streams.pop(0) if self.streams else FakeStream([], hang=True)


class Recorder:
    def __init__(self):
        self.log: list[tuple] = []

    def add(self, o):
        self.log.append(("add", o["metadata"]["name"], o["metadata"]["resourceVersion"]))

    def update(self, old, new):
        self.log.append(("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                         new["metadata"]["resourceVersion"]))

    def delete(self, o):
        self.log.append(("delete", o["metadata"]["name"], o["metadata"]["resourceVersion"]))


async def test_relist_after_gone_delivers_missed_changes():
    gone = ClientError(410, "Expired", "too old resource version")
    client = FakeClient(
        lists=[([_obj("a", 1), _obj("b", 2), _obj("c", 3)], 10),
               ([_obj("b", 2), _obj("c", 15, x="1"), _obj("d", 16)], 20)],
        streams=[FakeStream([("MODIFIED", _obj("a", 11)), ("BOOKMARK", {"metadata": {"resourceVersion": "12"}})],
                            end_with=gone)])
    inf = Informer(client, CONFIGMAPS, min_backoff=0.001)  # type: ignore[arg-type]
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    inf.start()
    assert await inf.wait_for_sync(1)
    for _ in range(100):
        if inf.relists == 2 and len(client.watch_rvs) == 2:
            break
        await asyncio.sleep(0.01)
    await inf.stop()
    assert client.watch_rvs == ["10", "20"]  # the first watch from the list, the second from the relist
    assert rec.log == [
        ("add", "a", "1"), ("add", "b", "2"), ("add", "c", "3"),
        ("update", "a", "1", "11"),
        # relist diff: a vanished (last known state delivered), c changed, d appeared, b untouched
        ("delete", "a", "11"), ("update", "c", "3", "15"), ("add", "d", "16"),
    ]
    assert sorted(inf.keys()) == ["n/b", "n/c", "n/d"]
    assert inf.get("n", "c")["data"] == {"x": "1"}
    assert inf.resource_version == "20"


async def test_stream_end_rewatches_from_last_rv():
    client = FakeClient(
        lists=[([_obj("a", 1)], 5)],
        streams=[FakeStream([("ADDED", _obj("b", 6))]),
                 FakeStream([("BOOKMARK", {"metadata": {"resourceVersion": "9"}})]),
                 FakeStream([("DELETED", _obj("b", 10))])])
    inf = Informer(client, CONFIGMAPS, min_backoff=0.001)  # type: ignore[arg-type]
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    inf.start()
    for _ in range(200):
        if len(client.watch_rvs) >= 4:
            break
        await asyncio.sleep(0.01)
    await inf.stop()
    assert client.watch_rvs[:4] == ["5", "6", "9", "10"]
    assert inf.relists == 1
    assert rec.log == [("add", "a", "1"), ("add", "b", "6"), ("delete", "b", "10")]


async def test_keys():
    assert key_of({"metadata": {"name": "x", "namespace": "ns"}}) == "ns/x"
    assert key_of({"metadata": {"name": "node1"}}) == "node1"
    assert split_key("ns/x") == ("ns", "x") and split_key("node1") == (None, "node1")


async def test_informer_against_server(api, ns):
    await api.create(CONFIGMAPS, cm("pre", ns, {"app": "x"}))
    inf = Informer(api, CONFIGMAPS, namespace=ns)
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    inf.start()
    assert await inf.wait_for_sync(5)
    assert [o["metadata"]["name"] for o in inf.list()] == ["pre"]
    assert inf.get(ns, "pre")["kind"] == "ConfigMap"  # list items get kind/apiVersion too
    await api.create(CONFIGMAPS, cm("new", ns))
    await api.patch(CONFIGMAPS, ns, "pre", {"data": {"k": "v"}})
    await api.delete(CONFIGMAPS, ns, "new")
    for _ in range(200):
        if len(rec.log) >= 4:
            break
        await asyncio.sleep(0.01)
    kinds = [(e[0], e[1]) for e in rec.log]
    assert kinds == [("add", "pre"), ("add", "new"), ("update", "pre"), ("delete", "new")]
    assert inf.get(ns, "pre")["data"] == {"k": "v"} and inf.get(ns, "new") is None
    # a handler added late first sees what is cached
    late = Recorder()
    inf.add_handler(late.add)
    assert [e[1] for e in late.log] == ["pre"]
    await inf.stop()


async def test_pod_indexes_and_custom_indexer(api, ns):
    await api.create(PODS, pod("p1", ns, node="n1", owner_uid="u-1"))
    await api.create(PODS, pod("p2", ns, node="n2", owner_uid="u-1"))
    await api.create(PODS, pod("p3", ns))
    inf = Informer(api, PODS, namespace=ns)
    inf.add_indexer("image", lambda o: [c["image"] for c in o["spec"]["containers"]])
    inf.start()
    assert await inf.wait_for_sync(5)
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(inf.by_index(NODE_NAME_INDEX, "n1")) == ["p1"]
    assert names(inf.by_index(NODE_NAME_INDEX, "")) == ["p3"]
    assert names(inf.by_index(OWNER_UID_INDEX, "u-1")) == ["p1", "p2"]
    assert names(inf.by_index(NAMESPACE_INDEX, ns)) == ["p1", "p2", "p3"]
    assert names(inf.list(ns)) == ["p1", "p2", "p3"] and inf.list("elsewhere") == []
    assert names(inf.by_index("image", "busybox")) == ["p1", "p2", "p3"]
    await api.delete(PODS, ns, "p1", grace_period_seconds=0)
    for _ in range(200):
        if not inf.by_index(NODE_NAME_INDEX, "n1") and inf.get(ns, "p1") is None:
            break
        await asyncio.sleep(0.01)
    assert inf.by_index(NODE_NAME_INDEX, "n1") == [] and names(inf.by_index(OWNER_UID_INDEX, "u-1")) == ["p2"]
    await inf.stop()


async def test_shared_factory(api, ns):
    factory = SharedInformerFactory(api, namespace=ns)
    a = factory.informer(CONFIGMAPS)
    assert factory.informer(CONFIGMAPS) is a
    assert factory.informer(PODS) is not a
    factory.start()
    factory.start()  # idempotent
    assert await factory.wait_for_sync(5)
    late = factory.informer(CONFIGMAPS, label_selector="x=y")  # requested after start: starts at once
    assert late.started and await late.wait_for_sync(5)
    await factory.stop()


async def test_relist_after_real_410(tmp_path):
    """A label-filtered informer whose resourceVersion falls behind the compacted revision gets 410 on its
    next watch and lists again, delivering what it missed."""
    from kubelite.apiserver.config import ServerConfig
    from kubelite.apiserver.server import start

    server = await start(ServerConfig(data_dir=str(tmp_path / "d"), port=0, fsync=False,
                                      compaction_interval=0.05))
    client = ApiClient.from_kubeconfig(server.kubeconfig)
    try:
        await client.create(CONFIGMAPS, cm("watched", "default", {"w": "1"}))
        inf = Informer(client, CONFIGMAPS, namespace="default", label_selector="w=1", watch_timeout=1,
                       min_backoff=0.01)
        rec = Recorder()
        inf.add_handler(rec.add, rec.update, rec.delete)
        inf.start()
        assert await inf.wait_for_sync(5)
        # unrelated writes move the revision on (the filtered watch sees none of them) and get compacted
        for i in range(5):
            await client.create(CONFIGMAPS, cm(f"noise{i}", "default"))
        await asyncio.sleep(0.2)
        assert server.ctx.store.compacted_revision > int(inf.resource_version)
        for _ in range(300):  # the watch ends after 1 s; its resume gets 410; the informer relists
            if inf.relists >= 2:
                break
            await asyncio.sleep(0.01)
        assert inf.relists >= 2
        await client.create(CONFIGMAPS, cm("later", "default", {"w": "1"}))
        for _ in range(200):
            if inf.get("default", "later"):
                break
            await asyncio.sleep(0.01)
        assert sorted(inf.keys()) == ["default/later", "default/watched"]
        assert [e[:2] for e in rec.log] == [("add", "watched"), ("add", "later")]
        await inf.stop()
    finally:
        await client.close()
        await server.stop()


@pytest.mark.parametrize("bad", [500])
async def test_transient_errors_are_retried(bad):
    client = FakeClient(lists=[([_obj("a", 1)], 5)],
                        streams=[FakeStream([], end_with=ClientError(bad, "InternalError", "boom")),
                                 FakeStream([("ADDED", _obj("b", 6))], hang=True)])
    inf = Informer(client, CONFIGMAPS, min_backoff=0.001)  # type: ignore[arg-type]
    inf.start()
    for _ in range(100):
        if inf.get("n", "b"):
            break
        await asyncio.sleep(0.01)
    await inf.stop()
    assert client.watch_rvs[:2] == ["5", "5"] and inf.relists == 1


def _managed(name: str, rv: int) -> dict:
    obj = _obj(name, rv)
    obj["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:data": {}}}]
    return obj


async def test_factory_informers_drop_managed_fields_plain_ones_keep_them():
    def client():
        return FakeClient(lists=[([_managed("a", 1)], 5)],
                          streams=[FakeStream([("MODIFIED", _managed("a", 6)), ("ADDED", _managed("b", 7))],
                                              hang=True)])

    seen = []
    inf = SharedInformerFactory(client()).informer(CONFIGMAPS)  # type: ignore[arg-type]
    inf.add_handler(seen.append, lambda old, new: seen.append(new))
    inf.start()
    plain = Informer(client(), CONFIGMAPS)  # type: ignore[arg-type]
    plain.start()
    for _ in range(100):
        if len(inf) == 2 and len(plain) == 2:
            break
        await asyncio.sleep(0.01)
    assert [o["metadata"]["resourceVersion"] for o in seen] == ["1", "6", "7"]
    assert all("managedFields" not in o["metadata"] for o in seen + inf.list())
    assert all(o["metadata"]["managedFields"] for o in plain.list())
    await inf.stop()
    await plain.stop()


async def test_scoped_views_share_one_informer_and_take_only_their_handlers_away():
    client = FakeClient(lists=[([_obj("a", 1)], 5)], streams=[FakeStream([], hang=True)])
    shared = SharedInformerFactory(client)  # type: ignore[arg-type]
    one, two = shared.scoped(), shared.scoped()
    inf1, inf2 = one.informer(CONFIGMAPS), two.informer(CONFIGMAPS)
    assert one.informer(CONFIGMAPS) is inf1 and inf1.informer is inf2.informer is shared.informer(CONFIGMAPS)
    rec1, rec2 = Recorder(), Recorder()
    inf1.add_handler(rec1.add, rec1.update, rec1.delete)
    one.start()
    assert await one.wait_for_sync(1)
    inf2.add_handler(rec2.add, rec2.update, rec2.delete)  # late: the cached objects are replayed as adds
    two.start()
    assert await two.wait_for_sync(1)
    assert rec1.log == rec2.log == [("add", "a", "1")]
    assert inf2.get("n", "a") is inf1.get("n", "a") and len(inf2) == 1 and "n/a" in inf2
    await one.stop()  # the first component goes (e.g. lost its lease): its handlers go, the cache stays
    assert inf1.informer.started
    inf1.informer._add("n/b", _obj("b", 6))
    assert rec1.log == [("add", "a", "1")]
    assert rec2.log == [("add", "a", "1"), ("add", "b", "6")]
    assert len(client.watch_rvs) == 1  # one list and one watch for both components
    registration = inf2.add_handler(None, None, rec2.delete)
    inf2.remove_handler(registration)
    inf1.informer._delete("n/b", _obj("b", 6))
    assert rec2.log[-1] == ("delete", "b", "6") and len(rec2.log) == 3  # only the remaining handler ran
    await shared.stop()
    assert not inf1.informer.started


def test_compact_shares_repeated_strings_and_keeps_values():
    import orjson

    from kubelite.client.informer import compact

    raw = orjson.dumps({"metadata": {"name": "p", "managedFields": [{"manager": "m"}]},
                        "spec": {"containers": [{"image": "nginx", "args": ["a", "b"]}], "n": 3},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    a, b = compact(orjson.loads(raw)), compact(orjson.loads(raw))
    assert a == {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "nginx", "args": ["a", "b"]}], "n": 3},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert a["spec"]["containers"][0]["image"] is b["spec"]["containers"][0]["image"]
    assert a["spec"]["containers"][0]["args"][1] is b["spec"]["containers"][0]["args"][1]
    assert a["status"]["conditions"][0]["status"] is b["status"]["conditions"][0]["status"]
