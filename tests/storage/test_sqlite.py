from __future__ import annotations

import asyncio
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

from kubelite.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
    StoreError,
)
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


async def collect(watch, n: int, timeout: float = 5.0) -> list[Event]:
    out = []
    it = aiter(watch)

    async def run():
        while len(out) < n:
            out.append(await anext(it))

    await asyncio.wait_for(run(), timeout)
    return out


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


# ---------------------------------------------------------------- revisions and CRUD


async def test_revisions_are_global_and_monotonic(store):
    assert store.current_revision == 0
    a = await store.create("/registry/pods/ns/a", b"1")
    b = await store.create("/registry/pods/ns/b", b"2")
    assert (a.create_revision, a.mod_revision) == (1, 1)
    assert (b.create_revision, b.mod_revision) == (2, 2)
    a2 = await store.update("/registry/pods/ns/a", b"3")
    assert (a2.create_revision, a2.mod_revision, a2.value) == (1, 3, b"3")
    prev, rev = await store.delete("/registry/pods/ns/b")
    assert prev == b and rev == 4
    assert store.current_revision == 4
    assert await store.get("/registry/pods/ns/b") is None
    assert await store.get("/registry/pods/ns/a") == a2
    again = await store.create("/registry/pods/ns/b", b"5")
    assert (again.create_revision, again.mod_revision) == (5, 5)


async def test_crud_errors_do_not_consume_revisions(store):
    kv = await store.create("/k/a", b"1")
    with pytest.raises(KeyExistsError) as e:
        await store.create("/k/a", b"2")
    assert e.value.key == "/k/a"
    with pytest.raises(KeyNotFoundError):
        await store.update("/k/missing", b"x")
    with pytest.raises(KeyNotFoundError):
        await store.update("/k/missing", b"x", expected_revision=1)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/k/missing")
    with pytest.raises(RevisionMismatchError) as e:
        await store.update("/k/a", b"2", expected_revision=99)
    assert e.value.current == kv
    with pytest.raises(RevisionMismatchError) as e:
        await store.delete("/k/a", expected_revision=99)
    assert e.value.current == kv
    assert store.current_revision == 1
    kv2 = await store.update("/k/a", b"2", expected_revision=1)
    assert kv2.mod_revision == 2
    prev, rev = await store.delete("/k/a", expected_revision=2)
    assert prev == kv2 and rev == 3


async def test_conditional_update_race_has_one_winner(store):
    kv = await store.create("/k/a", b"0")
    results = await asyncio.gather(*(store.update("/k/a", str(i).encode(), expected_revision=kv.mod_revision)
                                     for i in range(20)), return_exceptions=True)
    wins = [r for r in results if not isinstance(r, Exception)]
    assert len(wins) == 1
    assert all(isinstance(r, RevisionMismatchError) for r in results if isinstance(r, Exception))
    assert await store.get("/k/a") == wins[0]


async def test_get_at_revision(store):
    await store.create("/k/a", b"1")  # 1
    await store.update("/k/a", b"2")  # 2
    await store.delete("/k/a")  # 3
    await store.create("/k/a", b"4")  # 4
    assert (await store.get("/k/a", 1)).value == b"1"
    assert (await store.get("/k/a", 2)).value == b"2"
    assert await store.get("/k/a", 3) is None
    got = await store.get("/k/a", 4)
    assert (got.value, got.create_revision, got.mod_revision) == (b"4", 4, 4)
    with pytest.raises(FutureRevisionError):
        await store.get("/k/a", 5)
    with pytest.raises(FutureRevisionError):
        await store.list("/k/", revision=5)


# ---------------------------------------------------------------- lists


async def test_list_prefix_does_not_match_siblings(store):
    for key in ["/registry/pods/default/a", "/registry/pods/default2/x", "/registry/pods/default/b",
                "/registry/pods/defaulu/z", "/registry/pods/default"]:
        await store.create(key, b"v")
    result = await store.list("/registry/pods/default/")
    assert [kv.key for kv in result.items] == ["/registry/pods/default/a", "/registry/pods/default/b"]
    assert await store.count("/registry/pods/default/") == 2
    assert await store.count("/registry/pods/") == 5
    assert await store.count("") == 5
    at = await store.list("/registry/pods/default/", revision=store.current_revision)
    assert [kv.key for kv in at.items] == ["/registry/pods/default/a", "/registry/pods/default/b"]


async def test_list_at_revision(store):
    await store.create("/p/a", b"a1")  # 1
    await store.create("/p/b", b"b1")  # 2
    await store.update("/p/a", b"a2")  # 3
    await store.delete("/p/b")  # 4
    await store.create("/p/c", b"c1")  # 5
    await store.create("/q/x", b"x")  # 6

    def view(result):
        return [(kv.key, kv.value, kv.create_revision, kv.mod_revision) for kv in result.items]

    assert view(await store.list("/p/", revision=2)) == [("/p/a", b"a1", 1, 1), ("/p/b", b"b1", 2, 2)]
    assert view(await store.list("/p/", revision=3)) == [("/p/a", b"a2", 1, 3), ("/p/b", b"b1", 2, 2)]
    assert view(await store.list("/p/", revision=4)) == [("/p/a", b"a2", 1, 3)]
    latest = await store.list("/p/")
    assert view(latest) == [("/p/a", b"a2", 1, 3), ("/p/c", b"c1", 5, 5)]
    assert latest.revision == 6
    assert (await store.list("/p/", revision=4)).revision == 4


@pytest.mark.parametrize("at_revision", [False, True])
async def test_paging(store, at_revision):
    keys = [f"/registry/cm/ns/k{i:03d}" for i in range(25)]
    for key in random.sample(keys, len(keys)):
        await store.create(key, key.encode())
    await store.create("/registry/cm/ns0/other", b"x")
    full = store.current_revision
    revision = full if at_revision else 0
    if at_revision:  # writes after the list revision must not show in its pages
        await store.create("/registry/cm/ns/k999", b"late")
        await store.delete(keys[3])
    seen, start, pages = [], "", []
    while True:
        page = await store.list("/registry/cm/ns/", revision=revision, limit=10, start_key=start)
        seen += [kv.key for kv in page.items]
        pages.append((len(page.items), page.more, page.remaining))
        if not page.more:
            break
        start = page.items[-1].key
    assert seen == keys
    assert pages == [(10, True, 15), (10, True, 5), (5, False, 0)]
    exact = await store.list("/registry/cm/ns/", revision=full, limit=25)
    assert (exact.more, len(exact.items)) == (False, 25)


# ---------------------------------------------------------------- watch


async def test_watch_events_carry_prev_values(store):
    w = await store.watch("/p/", 0)
    await store.create("/p/a", b"1")
    await store.create("/other/a", b"x")
    await store.update("/p/a", b"2")
    await store.delete("/p/a")
    events = await collect(w, 3)
    assert [(e.type, e.key, e.value, e.prev_value, e.revision, e.create_revision) for e in events] == [
        ("PUT", "/p/a", b"1", None, 1, 1),
        ("PUT", "/p/a", b"2", b"1", 3, 1),
        ("DELETE", "/p/a", None, b"2", 4, 0),
    ]
    # the same events replayed from the history
    replay = await store.watch("/p/", 0)
    assert await collect(replay, 3) == events
    await w.close()
    await replay.close()


async def test_watch_close_ends_iteration(store):
    w = await store.watch("/p/", 0)
    task = asyncio.create_task(collect(w, 1))
    await asyncio.sleep(0.01)
    await w.close()
    with pytest.raises(StopAsyncIteration):
        await task


async def run_concurrent_writers(store, writers: int, ops: int) -> dict[int, tuple[str, str]]:
    """Creates, updates and deletes from several tasks; returns revision -> (type, key) of every write."""
    done: dict[int, tuple[str, str]] = {}

    async def writer(w: int):
        rng = random.Random(w)
        live: list[str] = []
        for i in range(ops):
            r = rng.random()
            if live and r < 0.3:
                kv = await store.update(rng.choice(live), b"u%d" % i)
                done[kv.mod_revision] = ("PUT", kv.key)
            elif live and r < 0.45:
                key = live.pop(rng.randrange(len(live)))
                _, rev = await store.delete(key)
                done[rev] = ("DELETE", key)
            else:
                key = f"/registry/{'pods' if w % 2 else 'svc'}/ns{w % 3}/w{w}-{i}"
                kv = await store.create(key, b"c%d" % i)
                live.append(key)
                done[kv.mod_revision] = ("PUT", key)
            if i % 7 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return done


@pytest.mark.parametrize("queue_size", [10_000, 3])
async def test_watch_no_gaps_under_concurrent_writers(db_path, queue_size):
    # queue_size 3: the watches overflow and must catch up from the history without losing an event
    store = SQLiteStore(db_path, fsync=False, watch_queue_size=queue_size)
    await store.start()
    watches: list[tuple[str, int, object, asyncio.Task]] = []
    try:
        await store.create("/registry/pods/ns0/seed", b"s")
        prefixes = ["/registry/", "/registry/pods/", "/registry/svc/ns1/", "/registry/pods/ns0/"]

        async def consume(prefix: str, watch) -> list[Event]:
            got = []
            async for event in watch:  # until the last write under this prefix, so duplicates show
                got.append(event)
                if queue_size < 10 and len(got) % 5 == 0:
                    await asyncio.sleep(0.001)  # a slow consumer
                if event.key == prefix + "zz-end":
                    return got
            raise AssertionError("watch ended")

        async def start_watches():
            for i in range(30):
                start = random.randrange(0, store.current_revision + 1)
                prefix = prefixes[i % len(prefixes)]
                watch = await store.watch(prefix, start)
                watches.append((prefix, start, watch, asyncio.create_task(consume(prefix, watch))))
                await asyncio.sleep(0.001)

        writes, _ = await asyncio.gather(run_concurrent_writers(store, 6, 80), start_watches())
        writes[1] = ("PUT", "/registry/pods/ns0/seed")
        end = {}
        for prefix in prefixes:
            kv = await store.create(prefix + "zz-end", b"x")
            writes[kv.mod_revision] = ("PUT", kv.key)
            end[prefix] = kv.mod_revision
        assert sorted(writes) == list(range(1, store.current_revision + 1))
        overflows = 0
        for prefix, start, watch, task in watches:
            expected = [(rev, *writes[rev]) for rev in sorted(writes)
                        if start < rev <= end[prefix] and writes[rev][1].startswith(prefix)]
            got = await asyncio.wait_for(task, 10)
            assert [(e.revision, e.type, e.key) for e in got] == expected, (prefix, start)
            overflows += watch.overflows
            await watch.close()
        assert (overflows > 0) == (queue_size < 10)
    finally:
        for *_, task in watches:
            task.cancel()
        await store.close()


async def test_many_watchers_get_events(store):
    watches = [await store.watch(["/registry/", "/registry/pods/"][i % 2], 0) for i in range(100)]
    tasks = [asyncio.create_task(collect(w, 5)) for w in watches]
    for i in range(5):
        await store.create(f"/registry/pods/ns/p{i}", b"v")
    results = await asyncio.gather(*tasks)
    assert all([e.revision for e in r] == [1, 2, 3, 4, 5] for r in results)


# ---------------------------------------------------------------- compaction


async def test_compaction(store):
    await store.create("/p/a", b"a1")  # 1
    await store.create("/p/b", b"b1")  # 2
    await store.update("/p/a", b"a2")  # 3
    await store.delete("/p/b")  # 4
    await store.update("/p/a", b"a3")  # 5
    await store.create("/p/c", b"c1")  # 6
    before = await store.list("/p/", revision=5)
    await store.compact(5)
    assert store.compacted_revision == 5
    for rev in (1, 4):
        with pytest.raises(CompactedError) as e:
            await store.get("/p/a", rev)
        assert (e.value.requested, e.value.compacted) == (rev, 5)
        with pytest.raises(CompactedError):
            await store.list("/p/", revision=rev)
    with pytest.raises(CompactedError):
        await store.watch("/p/", 4)
    assert await store.list("/p/", revision=5) == before
    assert (await store.get("/p/a", 5)).value == b"a3"
    assert await store.get("/p/b", 5) is None
    w = await store.watch("/p/", 5)
    await store.update("/p/c", b"c2")  # 7
    events = await collect(w, 2)
    assert [(e.revision, e.key, e.prev_value) for e in events] == [(6, "/p/c", None), (7, "/p/c", b"c1")]
    await w.close()
    # compacting again at or below is a no-op; beyond the current revision is an error
    await store.compact(3)
    assert store.compacted_revision == 5
    with pytest.raises(FutureRevisionError):
        await store.compact(100)
    # history rows below 5 that are superseded are gone; the newest version of each key stays
    await store.compact(7)
    with closing(sqlite3.connect(store.path)) as db:
        rows = db.execute("SELECT revision, key FROM history ORDER BY revision").fetchall()
    assert rows == [(5, "/p/a"), (7, "/p/c")]
    assert [kv.key for kv in (await store.list("/p/", revision=7)).items] == ["/p/a", "/p/c"]


async def test_lagging_watch_ends_with_compacted_error(db_path):
    store = SQLiteStore(db_path, fsync=False, watch_queue_size=2)
    await store.start()
    try:
        w = await store.watch("/p/", 0)
        for i in range(10):
            await store.create(f"/p/k{i}", b"v")
        await store.compact(8)
        with pytest.raises(CompactedError):
            await collect(w, 10)
    finally:
        await store.close()


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


async def test_past_page_when_keys_before_it_were_deleted_and_recreated(store):
    for name in "abcdef":
        await store.create(f"/p/{name}", name.encode())
    at = store.current_revision
    for name in "abc":  # gone from the latest state, so the latest-state read fills the page from further on
        await store.delete(f"/p/{name}")
    await store.create("/p/a", b"a again")
    await store.create("/p/aa", b"new")
    page = await store.list("/p/", revision=at, limit=4)
    assert [(kv.key, kv.value) for kv in page.items] == [("/p/a", b"a"), ("/p/b", b"b"), ("/p/c", b"c"),
                                                         ("/p/d", b"d")]
    assert (page.more, page.remaining) == (True, 2)
    rest = await store.list("/p/", revision=at, limit=4, start_key="/p/d")
    assert [kv.key for kv in rest.items] == ["/p/e", "/p/f"] and not rest.more


async def test_past_read_after_compaction(store):
    await store.create("/p/a", b"1")
    await store.update("/p/a", b"2")
    at = store.current_revision
    await store.update("/p/a", b"3")
    await store.create("/p/b", b"b")
    await store.compact(at)
    page = await store.list("/p/", revision=at, limit=1)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in page.items] == [("/p/a", b"2", at)]
    assert not page.more
    with pytest.raises(CompactedError):
        await store.list("/p/", revision=at - 1, limit=1)
