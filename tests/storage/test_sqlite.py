from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from contextlib import closing

import pytest

from kubelite.storage.interface import CompactedError, StoreError
from kubelite.storage.sqlite import SQLiteStore, key_range, prefix_end


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "data" / "state.db")


@pytest.fixture
async def store(db_path):
    s = SQLiteStore(db_path, fsync=False)
    await s.start()
    yield s
    await s.close()


# ---------------------------------------------------------------- key ranges


def test_prefix_end():
    assert prefix_end("/registry/pods/default/") == "/registry/pods/default0"
    assert prefix_end("a") == "b"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"


def test_key_range_start_key_outside_prefix_is_ignored():
    assert key_range("/a/", "/0") == ("key >= ? AND key < ?", ["/a/", "/a0"])
    assert key_range("/a/", "/a/x") == ("key > ? AND key < ?", ["/a/x", "/a0"])


# ---------------------------------------------------------------- compaction (the shared cases: test_store_conformance.py)


async def test_compaction_keeps_the_newest_version_of_each_key(store):
    await store.create("/p/a", b"a1")  # 1
    await store.create("/p/b", b"b1")  # 2
    await store.update("/p/a", b"a2")  # 3
    await store.delete("/p/b")  # 4
    await store.update("/p/a", b"a3")  # 5
    await store.create("/p/c", b"c1")  # 6
    await store.update("/p/c", b"c2")  # 7
    await store.compact(5)
    await store.compact(7)
    # history rows below 7 that are superseded are gone; the newest version of each key stays
    with closing(sqlite3.connect(store.path)) as db:
        rows = db.execute("SELECT revision, key FROM history ORDER BY revision").fetchall()
    assert rows == [(5, "/p/a"), (7, "/p/c")]
    assert [kv.key for kv in (await store.list("/p/", revision=7)).items] == ["/p/a", "/p/c"]


# ---------------------------------------------------------------- restart, durability, files


async def test_restart_keeps_revision_and_compaction(db_path):
    s = SQLiteStore(db_path)
    await s.start()
    await s.create("/k/a", b"1")
    await s.update("/k/a", b"2")
    await s.create("/k/b", b"1")
    await s.delete("/k/b")
    await s.compact(3)
    await s.close()

    s = SQLiteStore(db_path)
    await s.start()
    try:
        assert (s.current_revision, s.compacted_revision) == (4, 3)
        kv = await s.create("/k/c", b"1")
        assert kv.mod_revision == 5
        assert (await s.get("/k/a")).mod_revision == 2
        with pytest.raises(CompactedError):
            await s.get("/k/a", 2)
    finally:
        await s.close()


async def test_one_store_per_file(store, db_path):
    other = SQLiteStore(db_path)
    with pytest.raises(StoreError, match="in use"):
        await other.start()
    await store.create("/k/a", b"1")  # the failed start left the owner working
    assert (await store.get("/k/a")).value == b"1"


WRITER = textwrap.dedent("""
    import asyncio, sys
    from kubelite.storage.sqlite import SQLiteStore

    async def main(path, fsync):
        store = SQLiteStore(path, fsync=fsync)
        await store.start()
        async def worker(w):
            i = 0
            while True:
                key = f"/registry/pods/w{w}/k{i}"
                kv = await store.create(key, key.encode() * 20)
                print(key, kv.mod_revision, flush=True)
                i += 1
        await asyncio.gather(*(worker(w) for w in range(4)))

    asyncio.run(main(sys.argv[1], sys.argv[2] == "1"))
""")


@pytest.mark.parametrize("fsync", [True, False])
async def test_acknowledged_writes_survive_kill_9(db_path, fsync):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_path, "1" if fsync else "0"],
                            stdout=subprocess.PIPE, text=True)
    acked: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            key, rev = line.split()
            acked[key] = int(rev)
            if len(acked) >= 600:
                break
        proc.send_signal(signal.SIGKILL)
        for line in proc.stdout:  # acknowledged while we were killing it
            if line.endswith("\n"):
                key, rev = line.split()
                acked[key] = int(rev)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 600

    store = SQLiteStore(db_path)
    await store.start()
    try:
        assert store.current_revision >= max(acked.values())
        for key, rev in acked.items():
            kv = await store.get(key)
            assert kv is not None and kv.mod_revision == rev and kv.value == key.encode() * 20, key
        listed = await store.list("/registry/pods/")
        assert {kv.mod_revision for kv in listed.items} == set(range(1, store.current_revision + 1))
        kv = await store.create("/registry/pods/after/restart", b"x")
        assert kv.mod_revision == store.current_revision and kv.mod_revision > max(acked.values())
    finally:
        await store.close()


async def test_file_modes(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "fresh" / "state.db"
        store = SQLiteStore(str(path))
        await store.start()
        await store.create("/k/a", b"1")
        await store.get("/k/a")
        await store.list("/k/")

        def mode(p):
            return stat.S_IMODE(os.stat(p).st_mode)

        assert mode(path.parent) == 0o700
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert mode(path.parent / name) == 0o600, name
        # a process-wide umask is left as it was
        assert os.umask(0o022) == 0o022
        await store.checkpoint(vacuum=True)
        await store.close()
        for name in os.listdir(path.parent):
            assert mode(path.parent / name) == 0o600, name
    finally:
        os.umask(old)


async def test_existing_loose_database_file_is_tightened(tmp_path):
    path = tmp_path / "state.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    store = SQLiteStore(str(path))
    await store.start()
    await store.create("/k/a", b"1")
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(str(path) + "-wal").st_mode) == 0o600
    finally:
        await store.close()


# ---------------------------------------------------------------- paged reads at a past revision


@pytest.mark.parametrize("path", ["latest-corrected", "history"])
async def test_paged_reads_at_past_revisions_match_a_model(store, monkeypatch, path):
    """Every page at every past revision holds exactly the keys live then, with their values then, whatever was
    created, updated or deleted since, and remaining counts the rest; the two ways of reading agree."""
    if path == "history":
        monkeypatch.setattr("kubelite.storage.sqlite.PAST_READ_MAX_WRITES", 0)
    rng = random.Random(7)
    keys = [f"/registry/pods/ns{i % 3}/p{i:02d}" for i in range(40)]
    model: dict[str, tuple[bytes, int, int]] = {}  # key -> (value, create_revision, mod_revision)
    snapshots: dict[int, dict[str, tuple[bytes, int, int]]] = {}
    await store.create("/registry/pods", b"not under the prefix")
    await store.create("/registry/podsx/ns/a", b"a sibling prefix")
    for step in range(300):
        key = rng.choice(keys)
        if key in model and rng.random() < 0.3:
            _, rev = await store.delete(key)
            del model[key]
        elif key in model:
            kv = await store.update(key, f"v{step}".encode())
            model[key] = (kv.value, kv.create_revision, kv.mod_revision)
        else:
            kv = await store.create(key, f"v{step}".encode())
            model[key] = (kv.value, kv.create_revision, kv.mod_revision)
        if rng.random() < 0.1:
            await store.create(f"/registry/leases/l{step}", b"noise")  # writes outside the prefix
        snapshots[store.current_revision] = dict(model)
    for revision in rng.sample(sorted(snapshots), 25):
        for prefix in ("/registry/pods/", "/registry/pods/ns1/"):
            want = sorted((k, v) for k, v in snapshots[revision].items() if k.startswith(prefix))
            for limit in (0, 1, 7, 500):
                got, start = [], ""
                while True:
                    page = await store.list(prefix, revision=revision, limit=limit, start_key=start)
                    assert page.revision == revision
                    got += [(kv.key, (kv.value, kv.create_revision, kv.mod_revision)) for kv in page.items]
                    if not page.more:
                        break
                    assert len(page.items) == limit
                    assert page.remaining == len(want) - len(got)
                    start = page.items[-1].key
                assert got == want, (revision, prefix, limit)


