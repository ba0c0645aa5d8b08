"""The etcd store's watch cache: the cache alone (paging, past reads, own writes out of order), then on a real
etcd against a store without a cache (the same answers), another writer, a compaction under the live watch."""

from __future__ import annotations

import asyncio
import random

import pytest

from kubelite.storage.etcd import EtcdStore
from kubelite.storage.interface import CompactedError, Event, KeyExistsError, KeyNotFoundError, KeyValue
from kubelite.storage.watch_cache import WatchCache, resource_of
from storage.etcd_process import SKIP_REASON, etcd_available

needs_etcd = pytest.mark.skipif(not etcd_available(), reason=SKIP_REASON)


def kv(key: str, rev: int, created: int = 0) -> KeyValue:
    return KeyValue(key, f"v{rev}".encode(), created or rev, rev)


def put(key: str, rev: int, created: int = 0) -> Event:
    return Event("PUT", key, f"v{rev}".encode(), None, rev, created or rev)


def test_resource_of():
    assert resource_of("/registry/pods/ns/a") == "/registry/pods/"
    assert resource_of("/registry/pods/") == "/registry/pods/"
    assert resource_of("/registry/pods") == ""
    assert resource_of("/registry/") == ""
    assert resource_of("/elsewhere/x/y") == ""


def test_list_pages_as_etcd_does():
    cache = WatchCache()
    keys = [f"/registry/cm/ns/k{i}" for i in range(5)] + ["/registry/cm/nt/a", "/registry/cmx/ns/z"]
    cache.load([kv(k, 10) for k in sorted(keys)], 10)
    items, more, remaining = cache.list("/registry/cm/ns/", "", 2)
    assert [i.key for i in items] == ["/registry/cm/ns/k0", "/registry/cm/ns/k1"] and more and remaining == 3
    items, more, remaining = cache.list("/registry/cm/ns/", "/registry/cm/ns/k3", 2)
    assert [i.key for i in items] == ["/registry/cm/ns/k4"] and not more and remaining == 0
    assert cache.list("/registry/cm/ns/", "/registry/cm/ns/k4", 0)[0] == []
    assert len(cache.list("/registry/cm/", "", 0)[0]) == 6  # not /registry/cmx/
    assert len(cache.list("/registry", "", 0)[0]) == 7
    assert cache.count("/registry/cm/") == 6 and cache.count("/registry/c") == 7
    assert cache.list("/registry/cm/ns/k1", "", 0)[0][0].key == "/registry/cm/ns/k1"  # one key is a prefix too


def test_events_and_own_writes_out_of_order():
    cache = WatchCache()
    cache.load([kv("/registry/a/ns/x", 5)], 5)
    cache.apply_own(kv("/registry/a/ns/z", 8), "/registry/a/ns/z", 8)  # 6 and 7 not known yet: held back
    assert cache.revision == 5 and cache.get("/registry/a/ns/z") is None
    cache.apply_own(kv("/registry/a/ns/y", 6), "/registry/a/ns/y", 6)
    assert cache.revision == 6
    # 7 is another client's write: it comes by the watch, with 6 and 8 again (skipped), and 8 is applied after it
    cache.apply([put("/registry/a/ns/y", 6), Event("DELETE", "/registry/a/ns/x", None, b"v5", 7, 0)])
    assert cache.revision == 8
    assert cache.get("/registry/a/ns/x") is None and cache.get("/registry/a/ns/z").mod_revision == 8
    cache.apply([put("/registry/a/ns/z", 8)])
    assert cache.revision == 8 and [i.key for i in cache.list("/registry/a/", "", 0)[0]] == \
        ["/registry/a/ns/y", "/registry/a/ns/z"]


def test_progress_notification_lets_held_back_writes_in():
    cache = WatchCache()
    cache.load([], 5)
    cache.apply_own(kv("/registry/a/ns/z", 7), "/registry/a/ns/z", 7)
    assert cache.revision == 5
    cache.advance(6)  # revision 6 was outside the prefix: nothing missing up to it
    assert cache.revision == 7 and cache.get("/registry/a/ns/z").mod_revision == 7
    assert not cache.serves("/registry/a/", 6) and cache.serves("/registry/b/", 6)


def test_past_reads_only_where_nothing_changed_since():
    cache = WatchCache()
    cache.load([kv("/registry/a/ns/x", 3), kv("/registry/b/ns/y", 4)], 10)
    cache.apply([put("/registry/b/ns/y", 11, created=4)])
    assert cache.serves("/registry/a/", 10) and cache.serves("/registry/a/ns/", 10)
    assert not cache.serves("/registry/b/", 10) and cache.serves("/registry/b/", 11)
    assert not cache.serves("/registry/", 10)  # spans every resource
    assert not cache.serves("/registry/a/", 9)  # before the load: deletions before it are unknown
    assert not cache.serves("/registry/a/", 12)  # not reached yet
    assert cache.get_at("/registry/b/ns/y", 10) == (False, None)
    assert cache.get_at("/registry/a/ns/x", 10) == (True, kv("/registry/a/ns/x", 3))
    assert cache.get_at("/registry/a/ns/none", 10) == (True, None)


async def test_wait_for_a_revision():
    cache = WatchCache()
    cache.load([], 1)
    waiter = asyncio.create_task(cache.wait(3, 5))
    await asyncio.sleep(0)
    cache.apply([put("/registry/a/ns/x", 2)])
    await asyncio.sleep(0)
    assert not waiter.done()
    cache.apply([put("/registry/a/ns/x", 3)])
    assert await waiter
    assert not await cache.wait(9, 0.01)
    waiter = asyncio.create_task(cache.wait(9, 5))
    await asyncio.sleep(0)
    cache.invalidate()
    assert not await waiter


# ---------------------------------------------------------------- on etcd

@pytest.fixture
async def pair(etcd_server, etcd_prefix):
    """A store with the cache and one without, on the same keys."""
    cached = EtcdStore([etcd_server.endpoint], prefix=etcd_prefix, watch_cache=True)
    direct = EtcdStore([etcd_server.endpoint], prefix=etcd_prefix, watch_cache=False)
    await cached.start()
    await direct.start()
    yield cached, direct
    await cached.close()
    await direct.close()


def counting_calls(store: EtcdStore) -> list[str]:
    calls: list[str] = []
    original = store._call

    async def call(path, body, **kw):
        calls.append(path)
        return await original(path, body, **kw)

    store._call = call
    return calls


@needs_etcd
async def test_reads_match_etcd_and_do_not_reach_it(pair):
    cached, direct = pair
    rng = random.Random(7)
    names = [f"/registry/configmaps/ns{n}/c{i:02d}" for n in range(2) for i in range(15)]
    revisions = []
    for _ in range(120):  # concurrent bursts: acknowledged out of order
        batch = rng.sample(names, 4)

        async def op(key):
            if await cached.get(key) is None:
                await cached.create(key, rng.randbytes(8))
            elif rng.random() < 0.3:
                await cached.delete(key)
            else:
                await cached.update(key, rng.randbytes(8))

        await asyncio.gather(*(op(k) for k in batch))
        revisions.append(cached.current_revision)
    calls = counting_calls(cached)
    for prefix in ("/registry/configmaps/", "/registry/configmaps/ns1/", "/registry/"):
        mine, theirs = await cached.list(prefix), await direct.list(prefix)
        assert mine.items == theirs.items and mine.revision == theirs.revision
        assert await cached.count(prefix) == await direct.count(prefix)
    for key in names:
        assert await cached.get(key) == await direct.get(key)
    # paging at the revision of the first page, as a LIST with limit and continue does
    first = await cached.list("/registry/configmaps/", limit=7)
    pages, after = [first], first.items[-1].key
    while pages[-1].more:
        pages.append(await cached.list("/registry/configmaps/", revision=first.revision, limit=7, start_key=after))
        after = pages[-1].items[-1].key
    assert [i for p in pages for i in p.items] == (await direct.list("/registry/configmaps/")).items
    assert [p.remaining for p in pages[:-1]] == [
        p.remaining for p in [await direct.list("/registry/configmaps/", revision=first.revision, limit=7,
                                                start_key=pages[i - 1].items[-1].key if i else "")
                              for i in range(len(pages) - 1)]]
    assert calls == []  # all of it from the cache
    # a past revision with changes after it goes to etcd, and answers as etcd does
    past = revisions[60]
    mine = await cached.list("/registry/configmaps/", revision=past, limit=5, start_key=names[3])
    assert mine == await direct.list("/registry/configmaps/", revision=past, limit=5, start_key=names[3])
    assert await cached.get(names[0], past) == await direct.get(names[0], past)
    assert calls  # etcd answered those


@needs_etcd
async def test_another_writer_reaches_the_cache(pair):
    cached, other = pair  # `other` plays a second API server on the same etcd
    created = await other.create("/registry/pods/ns/a", b"1")
    for _ in range(200):
        if (await cached.get("/registry/pods/ns/a")) == created:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the watch did not bring the other writer's key")
    mine = await cached.create("/registry/pods/ns/b", b"2")  # read-your-writes, right after the write
    assert [i.key for i in (await cached.list("/registry/pods/")).items] == [created.key, mine.key]


@needs_etcd
async def test_compaction_past_the_live_watch_reloads_the_cache(pair):
    cached, other = pair
    await cached.create("/registry/pods/ns/a", b"1")
    watch = await cached.watch("/registry/pods/", cached.current_revision)
    cached._watcher.cancel()  # the live watch is cut off ...
    with pytest.raises(asyncio.CancelledError):
        await cached._watcher
    cached._live = False
    await other.create("/registry/pods/ns/b", b"2")  # ... while another server writes and compacts
    await other.delete("/registry/pods/ns/a")
    await other.compact(other.current_revision)
    assert (await cached.get("/registry/pods/ns/b")) is not None  # etcd answers while the watch is away
    cached._watcher = asyncio.create_task(cached._watch_loop())
    for _ in range(300):
        if cached._live and cached._cache.ready:
            break
        await asyncio.sleep(0.01)
    calls = counting_calls(cached)
    assert [i.key for i in (await cached.list("/registry/pods/")).items] == ["/registry/pods/ns/b"]
    assert calls == []
    with pytest.raises(CompactedError):  # the open watch missed events: it ends with 410 and the client re-lists
        await asyncio.wait_for(anext(aiter(watch)), 5)


@needs_etcd
async def test_every_cached_list_is_etcds_snapshot_at_its_revision(pair):
    """Under writers in this process and in another one, each LIST from the cache is exactly what etcd has at the
    revision it reports, and a GET right after our own write sees it."""
    cached, other = pair
    rng = random.Random(3)
    stop = False

    async def writer(store, tag):
        i = 0
        while not stop:
            key = f"/registry/secrets/ns/{tag}{rng.randrange(20)}"
            try:
                if rng.random() < 0.25:
                    await store.delete(key)
                else:
                    written = await store.update(key, b"%d" % i) if await store.get(key) else \
                        await store.create(key, b"%d" % i)
                    if tag == "b":  # keys only this writer touches
                        assert await cached.get(key) == written
            except (KeyNotFoundError, KeyExistsError):
                pass
            i += 1

    writers = [asyncio.create_task(writer(cached, "a")), asyncio.create_task(writer(cached, "b")),
               asyncio.create_task(writer(other, "a"))]
    try:
        for _ in range(40):
            mine = await cached.list("/registry/secrets/")
            assert mine.items == (await other.list("/registry/secrets/", revision=mine.revision)).items
            await asyncio.sleep(0.005)
    finally:
        stop = True
        await asyncio.gather(*writers)
