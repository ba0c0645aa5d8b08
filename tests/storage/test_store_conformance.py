"""The Store contract, run unchanged against every backend (SQLite and a real etcd: see conftest.py).

Revisions are written `base + n`: etcd's are global to the cluster and start above 0."""

from __future__ import annotations

import asyncio
import random

import pytest

from kubelite.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
)


async def collect(watch, n: int, timeout: float = 5.0) -> list[Event]:
    out = []
    it = aiter(watch)

    async def run():
        while len(out) < n:
            out.append(await anext(it))

    await asyncio.wait_for(run(), timeout)
    return out


# ---------------------------------------------------------------- revisions and CRUD


async def test_revisions_are_global_and_monotonic(store, base):
    a = await store.create("/registry/pods/ns/a", b"1")
    b = await store.create("/registry/pods/ns/b", b"2")
    assert (a.create_revision, a.mod_revision) == (base + 1, base + 1)
    assert (b.create_revision, b.mod_revision) == (base + 2, base + 2)
    a2 = await store.update("/registry/pods/ns/a", b"3")
    assert (a2.create_revision, a2.mod_revision, a2.value) == (base + 1, base + 3, b"3")
    prev, rev = await store.delete("/registry/pods/ns/b")
    assert prev == b and rev == base + 4
    assert store.current_revision == base + 4
    assert await store.get("/registry/pods/ns/b") is None
    assert await store.get("/registry/pods/ns/a") == a2
    again = await store.create("/registry/pods/ns/b", b"5")
    assert (again.create_revision, again.mod_revision) == (base + 5, base + 5)


async def test_empty_values_round_trip(store, base):
    kv = await store.create("/registry/k/empty", b"")
    assert (await store.get("/registry/k/empty")) == kv and kv.value == b""


async def test_crud_errors_do_not_consume_revisions(store, base):
    kv = await store.create("/registry/k/a", b"1")
    with pytest.raises(KeyExistsError) as e:
        await store.create("/registry/k/a", b"2")
    assert e.value.key == "/registry/k/a"
    with pytest.raises(KeyNotFoundError):
        await store.update("/registry/k/missing", b"x")
    with pytest.raises(KeyNotFoundError):
        await store.update("/registry/k/missing", b"x", expected_revision=base + 1)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/registry/k/missing")
    with pytest.raises(RevisionMismatchError) as e:
        await store.update("/registry/k/a", b"2", expected_revision=base + 99)
    assert e.value.current == kv
    with pytest.raises(RevisionMismatchError) as e:
        await store.delete("/registry/k/a", expected_revision=base + 99)
    assert e.value.current == kv
    assert store.current_revision == base + 1
    kv2 = await store.update("/registry/k/a", b"2", expected_revision=base + 1)
    assert kv2.mod_revision == base + 2
    prev, rev = await store.delete("/registry/k/a", expected_revision=base + 2)
    assert prev == kv2 and rev == base + 3


async def test_conditional_update_race_has_one_winner(store):
    kv = await store.create("/registry/k/a", b"0")
    results = await asyncio.gather(*(store.update("/registry/k/a", str(i).encode(), expected_revision=kv.mod_revision)
                                     for i in range(20)), return_exceptions=True)
    wins = [r for r in results if not isinstance(r, Exception)]
    assert len(wins) == 1
    assert all(isinstance(r, RevisionMismatchError) for r in results if isinstance(r, Exception))
    assert await store.get("/registry/k/a") == wins[0]


async def test_concurrent_creates_of_one_key_have_one_winner(store):
    results = await asyncio.gather(*(store.create("/registry/k/once", b"%d" % i) for i in range(10)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, KeyExistsError) for r in results if isinstance(r, Exception))


async def test_get_at_revision(store, base):
    await store.create("/registry/k/a", b"1")  # 1
    await store.update("/registry/k/a", b"2")  # 2
    await store.delete("/registry/k/a")  # 3
    await store.create("/registry/k/a", b"4")  # 4
    assert (await store.get("/registry/k/a", base + 1)).value == b"1"
    assert (await store.get("/registry/k/a", base + 2)).value == b"2"
    assert await store.get("/registry/k/a", base + 3) is None
    got = await store.get("/registry/k/a", base + 4)
    assert (got.value, got.create_revision, got.mod_revision) == (b"4", base + 4, base + 4)
    with pytest.raises(FutureRevisionError):
        await store.get("/registry/k/a", base + 5)
    with pytest.raises(FutureRevisionError):
        await store.list("/registry/k/", revision=base + 5)


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
    assert await store.count("/registry/") == 5
    at = await store.list("/registry/pods/default/", revision=store.current_revision)
    assert [kv.key for kv in at.items] == ["/registry/pods/default/a", "/registry/pods/default/b"]


async def test_list_at_revision(store, base):
    await store.create("/registry/p/a", b"a1")  # 1
    await store.create("/registry/p/b", b"b1")  # 2
    await store.update("/registry/p/a", b"a2")  # 3
    await store.delete("/registry/p/b")  # 4
    await store.create("/registry/p/c", b"c1")  # 5
    await store.create("/registry/q/x", b"x")  # 6

    def view(result):
        return [(kv.key, kv.value, kv.create_revision - base, kv.mod_revision - base) for kv in result.items]

    assert view(await store.list("/registry/p/", revision=base + 2)) == [("/registry/p/a", b"a1", 1, 1),
                                                                         ("/registry/p/b", b"b1", 2, 2)]
    assert view(await store.list("/registry/p/", revision=base + 3)) == [("/registry/p/a", b"a2", 1, 3),
                                                                         ("/registry/p/b", b"b1", 2, 2)]
    assert view(await store.list("/registry/p/", revision=base + 4)) == [("/registry/p/a", b"a2", 1, 3)]
    latest = await store.list("/registry/p/")
    assert view(latest) == [("/registry/p/a", b"a2", 1, 3), ("/registry/p/c", b"c1", 5, 5)]
    assert latest.revision == base + 6
    assert (await store.list("/registry/p/", revision=base + 4)).revision == base + 4


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


async def test_past_page_when_keys_before_it_were_deleted_and_recreated(store):
    for name in "abcdef":
        await store.create(f"/registry/p/{name}", name.encode())
    at = store.current_revision
    for name in "abc":
        await store.delete(f"/registry/p/{name}")
    await store.create("/registry/p/a", b"a again")
    await store.create("/registry/p/aa", b"new")
    page = await store.list("/registry/p/", revision=at, limit=4)
    assert [(kv.key, kv.value) for kv in page.items] == [
        ("/registry/p/a", b"a"), ("/registry/p/b", b"b"), ("/registry/p/c", b"c"), ("/registry/p/d", b"d")]
    assert (page.more, page.remaining) == (True, 2)
    rest = await store.list("/registry/p/", revision=at, limit=4, start_key="/registry/p/d")
    assert [kv.key for kv in rest.items] == ["/registry/p/e", "/registry/p/f"] and not rest.more


async def test_paged_reads_at_past_revisions_match_a_model(store):
    """Every page at every past revision holds exactly the keys live then, with their values then, and
    remaining counts the rest."""
    rng = random.Random(7)
    keys = [f"/registry/pods/ns{i % 3}/p{i:02d}" for i in range(40)]
    model: dict[str, tuple[bytes, int, int]] = {}
    snapshots: dict[int, dict[str, tuple[bytes, int, int]]] = {}
    await store.create("/registry/pods", b"not under the prefix")
    await store.create("/registry/podsx/ns/a", b"a sibling prefix")
    for step in range(200):
        key = rng.choice(keys)
        if key in model and rng.random() < 0.3:
            await store.delete(key)
            del model[key]
        elif key in model:
            kv = await store.update(key, f"v{step}".encode())
            model[key] = (kv.value, kv.create_revision, kv.mod_revision)
        else:
            kv = await store.create(key, f"v{step}".encode())
            model[key] = (kv.value, kv.create_revision, kv.mod_revision)
        if rng.random() < 0.1:
            await store.create(f"/registry/leases/l{step}", b"noise")
        snapshots[store.current_revision] = dict(model)
    for revision in rng.sample(sorted(snapshots), 12):
        for prefix in ("/registry/pods/", "/registry/pods/ns1/"):
            want = sorted((k, v) for k, v in snapshots[revision].items() if k.startswith(prefix))
            for limit in (0, 3, 500):
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


# ---------------------------------------------------------------- watch


async def test_watch_events_carry_prev_values(store, base):
    w = await store.watch("/registry/p/", base)
    await store.create("/registry/p/a", b"1")
    await store.create("/registry/other/a", b"x")
    await store.update("/registry/p/a", b"2")
    await store.delete("/registry/p/a")
    events = await collect(w, 3)
    assert [(e.type, e.key, e.value, e.prev_value, e.revision - base, e.create_revision) for e in events] == [
        ("PUT", "/registry/p/a", b"1", None, 1, base + 1),
        ("PUT", "/registry/p/a", b"2", b"1", 3, base + 1),
        ("DELETE", "/registry/p/a", None, b"2", 4, 0),
    ]
    # the same events replayed from the history: a watch resumed from a revision
    replay = await store.watch("/registry/p/", base)
    assert await collect(replay, 3) == events
    resumed = await store.watch("/registry/p/", base + 1)
    assert await collect(resumed, 2) == events[1:]
    for watch in (w, replay, resumed):
        await watch.close()


async def test_watch_close_ends_iteration(store):
    w = await store.watch("/registry/p/", store.current_revision)
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
async def test_watch_no_gaps_under_concurrent_writers(make_store, queue_size):
    """Watches started at random past revisions while writes go on see every event once, in order; with a
    queue of 3 they overflow and catch up from the history without losing an event."""
    store = make_store(watch_queue_size=queue_size)
    await store.start()
    base = store.current_revision
    watches: list[tuple[str, int, object, asyncio.Task]] = []
    try:
        seed = await store.create("/registry/pods/ns0/seed", b"s")
        prefixes = ["/registry/", "/registry/pods/", "/registry/svc/ns1/", "/registry/pods/ns0/"]

        async def consume(prefix: str, watch) -> list[Event]:
            got = []
            async for event in watch:  # until the last write under this prefix, so duplicates show
                got.append(event)
                if queue_size < 10 and len(got) % 5 == 0:
                    await asyncio.sleep(0.002)  # a slow consumer
                if event.key == prefix + "zz-end":
                    return got
            raise AssertionError("watch ended")

        async def start_watches():
            for i in range(30):
                start = random.randrange(base, store.current_revision + 1)
                prefix = prefixes[i % len(prefixes)]
                watch = await store.watch(prefix, start)
                watches.append((prefix, start, watch, asyncio.create_task(consume(prefix, watch))))
                await asyncio.sleep(0.001)

        writes, _ = await asyncio.gather(run_concurrent_writers(store, 6, 80), start_watches())
        writes[seed.mod_revision] = ("PUT", seed.key)
        end = {}
        for prefix in prefixes:
            kv = await store.create(prefix + "zz-end", b"x")
            writes[kv.mod_revision] = ("PUT", kv.key)
            end[prefix] = kv.mod_revision
        assert sorted(writes) == list(range(base + 1, store.current_revision + 1))
        overflows = 0
        for prefix, start, watch, task in watches:
            expected = [(rev, *writes[rev]) for rev in sorted(writes)
                        if start < rev <= end[prefix] and writes[rev][1].startswith(prefix)]
            got = await asyncio.wait_for(task, 20)
            assert [(e.revision, e.type, e.key) for e in got] == expected, (prefix, start)
            overflows += watch.overflows
            await watch.close()
        if queue_size >= 10:
            assert overflows == 0
    finally:
        for *_, task in watches:
            task.cancel()
        await store.close()


async def test_many_watchers_get_events(store, base):
    watches = [await store.watch(["/registry/", "/registry/pods/"][i % 2], base) for i in range(100)]
    tasks = [asyncio.create_task(collect(w, 5)) for w in watches]
    for i in range(5):
        await store.create(f"/registry/pods/ns/p{i}", b"v")
    results = await asyncio.gather(*tasks)
    assert all([e.revision - base for e in r] == [1, 2, 3, 4, 5] for r in results)
    for w in watches:
        await w.close()


async def test_watch_survives_a_long_run_of_writes(store):
    """One watch open while 500 writes go on, consumed as they come: every event, in order."""
    start = store.current_revision
    w = await store.watch("/registry/leases/", start)
    consumer = asyncio.create_task(collect(w, 500, timeout=30))
    revisions = []
    for i in range(250):
        kv = await store.create(f"/registry/leases/ns/l{i}", b"x")
        kv = await store.update(kv.key, b"y", expected_revision=kv.mod_revision)
        revisions += [kv.mod_revision - 1, kv.mod_revision]
    got = await consumer
    assert [e.revision for e in got] == revisions
    await w.close()


# ---------------------------------------------------------------- compaction


async def test_compaction(store, base):
    await store.create("/registry/p/a", b"a1")  # 1
    await store.create("/registry/p/b", b"b1")  # 2
    await store.update("/registry/p/a", b"a2")  # 3
    await store.delete("/registry/p/b")  # 4
    await store.update("/registry/p/a", b"a3")  # 5
    await store.create("/registry/p/c", b"c1")  # 6
    before = await store.list("/registry/p/", revision=base + 5)
    await store.compact(base + 5)
    assert store.compacted_revision == base + 5
    for rev in (base + 1, base + 4):
        with pytest.raises(CompactedError) as e:
            await store.get("/registry/p/a", rev)
        assert (e.value.requested, e.value.compacted) == (rev, base + 5)
        with pytest.raises(CompactedError):
            await store.list("/registry/p/", revision=rev)
    with pytest.raises(CompactedError):
        await store.watch("/registry/p/", base + 4)
    assert await store.list("/registry/p/", revision=base + 5) == before
    assert (await store.get("/registry/p/a", base + 5)).value == b"a3"
    assert await store.get("/registry/p/b", base + 5) is None
    w = await store.watch("/registry/p/", base + 5)
    await store.update("/registry/p/c", b"c2")  # 7
    events = await collect(w, 2)
    assert [(e.revision - base, e.key, e.prev_value) for e in events] == [(6, "/registry/p/c", None),
                                                                         (7, "/registry/p/c", b"c1")]
    await w.close()
    # compacting again at or below is a no-op; beyond the current revision is an error
    await store.compact(base + 3)
    assert store.compacted_revision == base + 5
    with pytest.raises(FutureRevisionError):
        await store.compact(base + 100)


async def test_lagging_watch_ends_with_compacted_error(make_store):
    store = make_store(watch_queue_size=2)
    await store.start()
    try:
        base = store.current_revision
        w = await store.watch("/registry/p/", base)
        fast = await store.watch("/registry/p/", base)
        for i in range(10):
            await store.create(f"/registry/p/k{i}", b"v")
        await collect(fast, 10)  # every event reached both watches: the slow one overflowed
        await store.compact(base + 8)
        with pytest.raises(CompactedError):
            await collect(w, 10)
        await fast.close()
    finally:
        await store.close()


async def test_past_read_after_compaction(store):
    await store.create("/registry/p/a", b"1")
    await store.update("/registry/p/a", b"2")
    at = store.current_revision
    await store.update("/registry/p/a", b"3")
    await store.create("/registry/p/b", b"b")
    await store.compact(at)
    page = await store.list("/registry/p/", revision=at, limit=1)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in page.items] == [("/registry/p/a", b"2", at)]
    assert not page.more
    with pytest.raises(CompactedError):
        await store.list("/registry/p/", revision=at - 1, limit=1)


async def test_a_new_store_knows_the_compacted_revision(make_store):
    first = make_store()
    await first.start()
    for i in range(5):
        await first.create(f"/registry/p/k{i}", b"v")
    at = first.current_revision - 1
    await first.compact(at)
    await first.close()
    second = make_store()  # SQLite: the same file reopened; etcd: a new client of the same cluster
    await second.start()
    try:
        assert second.compacted_revision == at
        assert second.current_revision >= at + 1
        with pytest.raises(CompactedError):
            await second.get("/registry/p/k0", at - 1)
        assert (await second.get("/registry/p/k4")).value == b"v"
    finally:
        await second.close()
