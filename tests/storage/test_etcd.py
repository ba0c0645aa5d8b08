"""What only the etcd backend has: the key layout etcdctl sees, TLS with client certificates, several
endpoints, a lost quorum, a restarted etcd under an open watch.  Real etcd processes on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from kubelite.storage.etcd import EtcdStore, EtcdUnavailableError, prefix_end
from kubelite.storage.interface import CompactedError, StoreError
from storage.etcd_process import SKIP_REASON, EtcdMember, EtcdTLS, etcd_available, start_cluster

pytestmark = pytest.mark.skipif(not etcd_available(), reason=SKIP_REASON)


async def next_event(watch, timeout: float = 5.0):
    return await asyncio.wait_for(anext(aiter(watch)), timeout)


def test_prefix_end():
    assert prefix_end(b"/registry/pods/") == b"/registry/pods0"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\xff") == b"\0"


async def test_keys_are_laid_out_as_kube_apiserver_does(etcd_server):
    store = EtcdStore([etcd_server.endpoint])  # the default prefix, /registry
    await store.start()
    try:
        name = f"layout-{time.monotonic_ns()}"
        body = json.dumps({"kind": "Pod", "metadata": {"name": name}}).encode()
        await store.create(f"/registry/pods/default/{name}", body)
        keys = etcd_server.etcdctl("get", "--prefix", "--keys-only", "/registry/pods/default/").stdout.split()
        assert f"/registry/pods/default/{name}" in keys
        value = etcd_server.etcdctl("get", "--print-value-only", f"/registry/pods/default/{name}").stdout
        assert json.loads(value) == {"kind": "Pod", "metadata": {"name": name}}
    finally:
        await store.close()


async def test_another_prefix_maps_the_registry_root(etcd_server):
    store = EtcdStore([etcd_server.endpoint], prefix="/cluster-b/registry/")
    await store.start()
    try:
        await store.create("/registry/configmaps/ns/a", b"{}")
        keys = etcd_server.etcdctl("get", "--prefix", "--keys-only", "/cluster-b/").stdout.split()
        assert keys == ["/cluster-b/registry/configmaps/ns/a"]
        assert [kv.key for kv in (await store.list("/registry/configmaps/")).items] == ["/registry/configmaps/ns/a"]
        with pytest.raises(StoreError, match="outside /registry"):
            await store.create("/elsewhere/a", b"")
    finally:
        await store.close()


async def test_compaction_by_another_client_ends_a_resuming_watch_with_410(etcd_server, etcd_prefix):
    store = EtcdStore([etcd_server.endpoint], prefix=etcd_prefix)
    await store.start()
    try:
        base = store.current_revision
        for i in range(4):
            await store.create(f"/registry/p/k{i}", b"v")
        watch = await store.watch("/registry/p/", base + 1)  # behind: it will read etcd's history
        etcd_server.etcdctl("compaction", str(base + 3))  # not through our store: it learns from etcd
        with pytest.raises(CompactedError):
            await next_event(watch)
        assert store.compacted_revision == base + 3  # etcd's answer to the watch says where
        with pytest.raises(CompactedError):
            await store.get("/registry/p/k0", base + 1)
        with pytest.raises(CompactedError):
            await store.watch("/registry/p/", base + 2)
    finally:
        await store.close()


async def test_watch_resumes_after_etcd_restarts(tmp_path):
    member = EtcdMember("restart", str(tmp_path / "m"))
    member.start()
    store = EtcdStore([member.endpoint], connect_timeout=0.5)
    try:
        await store.start()
        watch = await store.watch("/registry/p/", store.current_revision)
        first = await store.create("/registry/p/a", b"1")
        assert (await next_event(watch)).revision == first.mod_revision
        member.stop()
        for _ in range(2):  # a pooled connection may die mid-request first; then the refused connect
            with pytest.raises(EtcdUnavailableError, match="etcd unavailable: http://127.0.0.1"):
                await store.create("/registry/p/b", b"2")
        member.start()
        second = await store.create("/registry/p/b", b"2")
        event = await next_event(watch, timeout=10)
        assert (event.key, event.revision) == ("/registry/p/b", second.mod_revision)
    finally:
        await store.close()
        member.stop()


async def test_failover_between_members_and_lost_quorum(tmp_path):
    members = start_cluster(str(tmp_path))
    store = EtcdStore([m.endpoint for m in members], connect_timeout=0.5, request_timeout=3.0)
    try:
        await store.start()
        watch = await store.watch("/registry/p/", store.current_revision)
        await store.create("/registry/p/a", b"1")
        await next_event(watch)
        members[0].stop(signal.SIGKILL)  # the endpoint in use
        deadline = time.monotonic() + 10
        while True:  # writes come back once a leader is elected (~2 s when the leader died)
            try:
                kv = await store.create("/registry/p/b", b"2")
                break
            except EtcdUnavailableError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        assert (await next_event(watch, timeout=10)).revision == kv.mod_revision
        members[1].stop(signal.SIGKILL)  # one of three left: no quorum
        started = time.monotonic()
        with pytest.raises(EtcdUnavailableError) as e:
            await store.create("/registry/p/c", b"3")
        assert time.monotonic() - started < 8
        assert "etcd" in str(e.value) and "Traceback" not in str(e.value)
        with pytest.raises(EtcdUnavailableError):  # not a stale answer from the watch cache
            await store.get("/registry/p/a")
        members[1].start(wait=False)
        deadline = time.monotonic() + 15
        while True:  # quorum is back: writes resume
            try:
                await store.create("/registry/p/d", b"4")
                break
            except (EtcdUnavailableError, StoreError):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)
        assert (await store.get("/registry/p/d")).value == b"4"
        assert store._cache is not None and store._cache_for(0) is not None  # the cache serves again
    finally:
        await store.close()
        for m in members:
            m.stop(signal.SIGKILL)


async def test_tls_with_client_certificates(tmp_path):
    tls = EtcdTLS.make(str(tmp_path / "pki"))
    member = EtcdMember("tls", str(tmp_path / "m"), tls=tls)
    member.start()
    try:
        store = EtcdStore([member.endpoint], ca_file=tls.ca_file, cert_file=tls.client_cert_file,
                          key_file=tls.client_key_file)
        await store.start()
        await store.create("/registry/secrets/ns/s", b"{}")
        await store.close()
        without_cert = EtcdStore([member.endpoint], ca_file=tls.ca_file, connect_timeout=1, request_timeout=2)
        with pytest.raises(StoreError):
            await without_cert.start()
        assert member.etcdctl("get", "--prefix", "--keys-only", "/registry", cert=False, check=False).returncode != 0
        assert member.etcdctl("get", "--prefix", "--keys-only", "/registry").stdout.split() == \
            ["/registry/secrets/ns/s"]
    finally:
        member.stop()
