"""`kubelite etcd-snapshot save|restore`: snapshot → wipe → restore, on SQLite and on a real etcd; every object
back, the revision raised and older ones compacted so watchers never see resourceVersions go back."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket

import pytest

from kubelite.etcd import snapshot
from kubelite.storage.interface import CompactedError
from kubelite.storage.sqlite import SQLiteStore
from storage.etcd_process import SKIP_REASON, etcd_available


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sqlite_snapshot_wipe_restore(tmp_path):
    data, fresh, snap = str(tmp_path / "data"), str(tmp_path / "fresh"), str(tmp_path / "snap.db")
    os.makedirs(data)

    async def run():
        store = SQLiteStore(snapshot.sqlite_path(data))
        await store.start()
        for i in range(50):
            await store.create(f"/registry/configmaps/default/cm{i}", b'{"n": %d}' % i)
        before = store.current_revision
        assert snapshot.save(data, snap) == "sqlite"  # online: the store is open and serving
        await store.create("/registry/configmaps/default/after", b"{}")  # written after the snapshot
        seen = store.current_revision
        await store.close()
        shutil.rmtree(data)
        assert snapshot.kind_of_file(snap) == "sqlite"
        revision = snapshot.restore_sqlite(snap, fresh, bump=1000)
        assert revision == before + 1000
        restored = SQLiteStore(snapshot.sqlite_path(fresh))
        await restored.start()
        try:
            listed = await restored.list("/registry/configmaps/")
            assert len(listed.items) == 50
            assert restored.current_revision > seen  # monotonic for a watcher that saw `seen`
            with pytest.raises(CompactedError):  # its old resourceVersion is gone: it relists
                await restored.watch("/registry/", seen)
            kv = await restored.create("/registry/configmaps/default/new", b"{}")
            assert kv.mod_revision > revision
        finally:
            await restored.close()

    asyncio.run(run())


def test_restore_refuses_a_data_dir_with_a_store(tmp_path):
    (tmp_path / "state.db").write_bytes(b"")
    with pytest.raises(snapshot.SnapshotError, match="fresh data dir"):
        snapshot._refuse_existing(str(tmp_path))


@pytest.mark.skipif(not etcd_available(), reason=SKIP_REASON)
def test_etcd_snapshot_wipe_restore(tmp_path):
    from kubelite.storage.etcd import EtcdStore
    from storage.etcd_process import EtcdMember

    member = EtcdMember("m0", str(tmp_path / "m0"))
    member.start()
    snap, fresh = str(tmp_path / "snap.db"), str(tmp_path / "fresh")
    try:
        async def fill() -> int:
            store = EtcdStore([member.endpoint])
            await store.start()
            for i in range(30):
                await store.create(f"/registry/pods/default/p{i}", b'{"n": %d}' % i)
            await store.close()
            return store.current_revision

        before = asyncio.run(fill())
        snapshot.save(str(tmp_path / "none"), snap, etcd_servers=[member.endpoint])
    finally:
        member.stop()
    shutil.rmtree(member.data_dir)  # wipe
    ports = {"client_port": _free_port(), "peer_port": _free_port(), "metrics_port": _free_port()}
    revision = asyncio.run(snapshot.restore_etcd(snap, fresh, "m0", "127.0.0.1", bump=200, **ports))
    assert revision > before + 200

    async def check() -> None:
        from kubelite.etcd.member import MemberConfig, start_local_member

        local = await start_local_member(MemberConfig(data_dir=fresh, name="m0", advertise="127.0.0.1", **ports))
        try:
            store = EtcdStore(local.endpoints, ca_file=local.pki.ca_file, cert_file=local.pki.apiserver_cert,
                              key_file=local.pki.apiserver_key)
            await store.start()
            try:
                assert len((await store.list("/registry/pods/")).items) == 30
                assert store.current_revision >= revision
                with pytest.raises(CompactedError):
                    await store.get("/registry/pods/default/p0", revision=before)
            finally:
                await store.close()
        finally:
            local.stop()

    asyncio.run(check())
