"""Store micro-benchmark: prints the figures the storage targets are stated in.

    python bench/store.py [--no-fsync] [--uvloop] [--dir DIR] [--etcd URL[,URL...]]

--etcd measures the etcd backend against a running etcd instead (keys under a fresh prefix); with
KUBELITE_ETCD_WATCH_CACHE=0 in the environment, without its watch cache (every read goes to etcd).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time

from kubelite.storage.sqlite import SQLiteStore

VALUE = b'{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x","namespace":"default"},"spec":' + b"x" * 300 + b"}"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def bench(directory: str, fsync: bool, etcd: str = "") -> None:
    if etcd:
        from kubelite.storage.etcd import EtcdStore

        store = EtcdStore(etcd.split(","), prefix=f"/bench-{os.getpid()}-{time.time_ns()}/registry")
    else:
        store = SQLiteStore(os.path.join(directory, "db", "state.db"), fsync=fsync)
    await store.start()
    backend = f"etcd {etcd} watch-cache={'on' if store._cache is not None else 'off'}" if etcd \
        else f"sqlite fsync={fsync}"
    print(f"{backend}  value={len(VALUE)} bytes  loop={type(asyncio.get_running_loop()).__module__}")

    t = time.perf_counter()
    for i in range(1000):
        await store.create(f"/registry/pods/seq/p{i:05d}", VALUE)
    seq = time.perf_counter() - t
    print(f"1000 sequential creates        {seq * 1000:8.1f} ms  (target < 600)")

    async def writer(w: int) -> None:
        for i in range(125):
            await store.create(f"/registry/pods/conc/w{w}-{i:05d}", VALUE)

    t = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(8)))
    conc = time.perf_counter() - t
    print(f"1000 creates, 8 tasks           {conc * 1000:8.1f} ms  (target < 300)")

    t = time.perf_counter()
    await asyncio.gather(*(store.update(f"/registry/pods/conc/w{w}-{i:05d}", VALUE)
                           for w in range(8) for i in range(125)))
    burst = time.perf_counter() - t
    print(f"1000 updates at once            {burst * 1000:8.1f} ms")

    # 10,000 objects for the list figure (written concurrently to be quick)
    for chunk in range(10):
        await asyncio.gather(*(store.create(f"/registry/configmaps/big/c{chunk}-{i:04d}", VALUE)
                               for i in range(1000)))

    keys = [f"/registry/configmaps/big/c{random.randrange(10)}-{random.randrange(1000):04d}" for _ in range(5000)]
    lat = []
    for key in keys:
        t = time.perf_counter()
        await store.get(key)
        lat.append(time.perf_counter() - t)
    print(f"get p50 / p99                   {pct(lat, .5) * 1e3:8.3f} / {pct(lat, .99) * 1e3:.3f} ms  (p99 target < 0.3)")

    at = store.current_revision - 500
    lat = []
    for key in keys[:1000]:
        t = time.perf_counter()
        await store.get(key, revision=at)
        lat.append(time.perf_counter() - t)
    print(f"get at revision p50 / p99       {pct(lat, .5) * 1e3:8.3f} / {pct(lat, .99) * 1e3:.3f} ms")

    lat = []
    for _ in range(10):
        t = time.perf_counter()
        result = await store.list("/registry/configmaps/big/")
        lat.append(time.perf_counter() - t)
    assert len(result.items) == 10_000
    print(f"list 10,000 values  median/max  {statistics.median(lat) * 1e3:8.1f} / {max(lat) * 1e3:.1f} ms  (target < 60)")

    t = time.perf_counter()
    result = await store.list("/registry/configmaps/big/", revision=store.current_revision - 100)
    print(f"list 10,000 at a revision       {(time.perf_counter() - t) * 1e3:8.1f} ms")

    t = time.perf_counter()
    page = await store.list("/registry/configmaps/big/", limit=500)
    print(f"list page of 500 (+remaining)   {(time.perf_counter() - t) * 1e3:8.1f} ms  remaining={page.remaining}")

    # 100 watchers on overlapping prefixes; latency from the write call to each watcher's receipt
    prefixes = ["/registry/", "/registry/pods/", "/registry/pods/w/", "/registry/pods/w/p"]
    watches = [await store.watch(prefixes[i % 4], store.current_revision) for i in range(100)]
    received: list[list[float]] = [[] for _ in watches]

    async def consume(i: int, n: int) -> None:
        it = aiter(watches[i])
        for _ in range(n):
            await anext(it)
            received[i].append(time.perf_counter())

    n = 200
    consumers = [asyncio.create_task(consume(i, n)) for i in range(100)]
    await asyncio.sleep(0.01)
    sent, acked = [], []
    for i in range(n):
        sent.append(time.perf_counter())
        await store.create(f"/registry/pods/w/p{i:04d}", VALUE)
        acked.append(time.perf_counter())
        await asyncio.sleep(0.002)
    await asyncio.wait_for(asyncio.gather(*consumers), 10)
    from_write = [r[j] - sent[j] for r in received for j in range(n)]
    from_ack = [max(0.0, r[j] - acked[j]) for r in received for j in range(n)]
    print(f"100 watchers: write->receipt p50/p99 {pct(from_write, .5) * 1e3:6.2f} / {pct(from_write, .99) * 1e3:.2f} ms"
          f"  ack->receipt p99 {pct(from_ack, .99) * 1e3:.2f} ms  (target < 5)")
    for w in watches:
        await w.close()

    t = time.perf_counter()
    replay = await store.watch("/registry/configmaps/big/", store.current_revision - 12_000)
    it = aiter(replay)
    for _ in range(10_000):
        await anext(it)
    await replay.close()
    print(f"watch replay of 10,000 events    {(time.perf_counter() - t) * 1e3:8.1f} ms")

    # reads while 8 writers keep the writer thread busy
    stop = False

    async def busy_writer(w: int) -> None:
        i = 0
        while not stop:
            await store.create(f"/registry/pods/load/w{w}-{i}", VALUE)
            i += 1

    writers = [asyncio.create_task(busy_writer(w)) for w in range(8)]
    await asyncio.sleep(0.05)
    lat = []
    for key in keys[:2000]:
        t = time.perf_counter()
        await store.get(key)
        lat.append(time.perf_counter() - t)
        await asyncio.sleep(0)
    t = time.perf_counter()
    page = await store.list("/registry/configmaps/big/", limit=500)
    listed = time.perf_counter() - t
    stop = True
    await asyncio.gather(*writers)
    print(f"under write load: get p99 {pct(lat, .99) * 1e3:.3f} ms, list 500 {listed * 1e3:.1f} ms")

    # history to compact: every configmap updated once more
    await asyncio.gather(*(store.update(f"/registry/configmaps/big/c{c}-{i:04d}", VALUE)
                           for c in range(10) for i in range(1000)))
    rows = store.current_revision
    t = time.perf_counter()
    await store.compact(store.current_revision)
    print(f"compact {rows} revisions          {(time.perf_counter() - t) * 1e3:8.1f} ms")

    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--dir", default=None, help="where to put the database (default: a temp dir)")
    parser.add_argument("--etcd", default="", metavar="URLS", help="measure the etcd backend at these endpoints")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop
        uvloop.install()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        asyncio.run(bench(directory, not args.no_fsync, args.etcd))


if __name__ == "__main__":
    main()
