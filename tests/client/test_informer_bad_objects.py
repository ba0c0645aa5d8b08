"""An object the informer cannot understand (stored before validation refused its shape) is skipped, once logged."""

from __future__ import annotations

import asyncio
import logging

from client.client_objects import PODS
from client.test_informer import FakeClient, FakeStream
from kubelite.client.informer import OWNER_UID_INDEX, Informer


def _pod(name: str, rv: int, **meta) -> dict:
    return {"metadata": {"name": name, "namespace": "n", "resourceVersion": str(rv), **meta}, "spec": {}}


async def test_null_owner_reference_and_nameless_items_do_not_stop_the_informer(caplog):
    bad = _pod("bad", 2, ownerReferences=[None, "x", {"uid": 5}, {"uid": "u1"}])
    client = FakeClient(lists=[([_pod("a", 1), bad, {"metadata": None}, "junk", _pod("z", 3)], 10)],
                        streams=[FakeStream([("ADDED", _pod("c", 11, ownerReferences=[None])),
                                             ("ADDED", {"metadata": {}}),
                                             ("MODIFIED", dict(bad, spec={"x": 1}))])])
    inf = Informer(client, PODS, min_backoff=0.001)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        inf.start()
        assert await inf.wait_for_sync(1)
        for _ in range(100):
            if "n/c" in inf and inf.get("n", "bad")["spec"] == {"x": 1}:
                break
            await asyncio.sleep(0.01)
        await inf.stop()
    assert sorted(inf.keys()) == ["n/a", "n/bad", "n/c", "n/z"]
    assert inf.relists == 1  # never failed and re-listed
    assert [o["metadata"]["name"] for o in inf.by_index(OWNER_UID_INDEX, "u1")] == ["bad"]
    logged = [r for r in caplog.records if "cannot understand" in r.getMessage()]
    assert len(logged) == 1  # the nameless item, once (the null refs are left out of the index quietly)
