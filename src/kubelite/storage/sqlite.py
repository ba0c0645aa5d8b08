"""The embedded Store: one SQLite file in WAL mode, etcd-like revisions, group-committed writes.

Tables (see SCHEMA): `objects` holds the latest value of every live key (what a plain get/list reads),
`history` holds one row per write, keyed by its revision (what reads at a revision and watch replay read),
`meta` holds the current and the compacted revision.  Compaction keeps, as etcd does, the newest version of
each key at or below the compaction revision, so reads at that revision still work.

Threads: one writer thread owns the only writing connection.  It takes every queued operation, applies the
lot in one transaction, commits once (a group commit: one WAL sync for the batch), then resolves the callers'
futures and publishes the events on the event loop.  Reads never queue behind writes: `get` reads on the
event loop through its own connection (a point lookup costs microseconds), `list`, `count` and watch replay
run on a small pool of reader threads, each with its own connection; WAL lets them read while a write commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubelite.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    Store,
    StoreError,
    Watch,
)
from kubelite.storage.watch_hub import DEFAULT_QUEUE_SIZE, WatchHub

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    value BLOB,                       -- NULL for a delete
    create_revision INTEGER NOT NULL, -- 0 for a delete
    prev_revision INTEGER NOT NULL,   -- revision of the version this write replaced, 0 on create
    deleted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS history_key_revision ON history (key, revision);
-- keys alone: counting a range (a paged list's remainingItemCount) reads ~100x fewer pages than the table does
CREATE INDEX IF NOT EXISTS objects_key ON objects (key);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
"""

LATEST_CACHE_SIZE = 4096  # keys whose latest value is kept in memory
MAX_BATCH = 1000  # operations per group commit: bounds the latency a batch adds to its first caller
READER_THREADS = 2
# A list at a past revision reads the latest state and corrects the keys written since, while there are at most
# this many writes since (each one costs a step of a rowid scan); past it, it walks the history in key order.
PAST_READ_MAX_WRITES = 100_000


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with prefix (None: no upper bound).

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so bumping the last code point works."""
    chars = list(prefix)
    while chars:
        last = ord(chars[-1])
        if last < 0x10FFFF:
            bumped = last + 1
            if 0xD800 <= bumped <= 0xDFFF:  # surrogates cannot be encoded; skip past them
                bumped = 0xE000
            chars[-1] = chr(bumped)
            return "".join(chars)
        chars.pop()
    return None


def key_range(prefix: str, start_key: str = "") -> tuple[str, list[Any]]:
    """A WHERE fragment on `key` for the keys under prefix, after start_key (exclusive) when given."""
    if start_key and start_key >= prefix:
        clauses, params = ["key > ?"], [start_key]
    else:
        clauses, params = ["key >= ?"], [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append("key < ?")
        params.append(end)
    return " AND ".join(clauses), params


class _Op:
    __slots__ = ("kind", "key", "value", "expected", "future", "result", "error", "event")

    def __init__(self, kind: str, key: str, value: Any, expected: int | None,
                 future: asyncio.Future[Any] | None) -> None:
        self.kind = kind  # create | update | delete | compact
        self.key = key
        self.value = value  # bytes; the revision for compact
        self.expected = expected
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None
        self.event: Event | None = None


class SQLiteStore(Store):
    """The embedded store.

    fsync=True: every commit is synced to disk (synchronous=FULL), so an acknowledged write survives a power
    loss, not only a crash of the process.  fsync=False: synchronous=NORMAL, the WAL is synced only at
    checkpoints; an acknowledged write still survives `kill -9` of the process (the commit reached the OS with
    write(2) before we acknowledged it), but not the loss of the machine.  Group commit keeps FULL cheap:
    one sync per batch, however many writers are waiting.  Measured here (bench/store.py, 2 cores, ext4):
    1000 sequential creates take ~0.34 s with FULL and ~0.06 s with NORMAL; 8 concurrent writers ~0.06-0.09 s
    either way.  FULL is the default because it is within the targets and a node's power cut is not rare.

    One store owns the file: a second one on the same path fails to start (an flock on `<path>-lock`).

    watch_queue_size bounds each watch's buffer of live events; past it a watch re-reads from the history
    (see watch_hub.py) and ends with CompactedError only if that history has been compacted.
    """

    def __init__(self, path: str, *, fsync: bool = True, watch_queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.path = os.path.abspath(path)
        self.fsync = fsync
        self._watch_queue_size = watch_queue_size
        self._revision = 0
        self._compacted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._read_db: sqlite3.Connection | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._reader_local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._hub: WatchHub | None = None
        # The latest value of recently read or written keys. Written only on the loop thread, when a commit
        # is acknowledged (and by reads, which run on the loop thread too), so it is never older than what a
        # client was told or a watcher saw; spares the read-modify-write of bindings and status updates a
        # query that would wait for the writer thread's GIL.
        self._latest: OrderedDict[str, KeyValue | None] = OrderedDict()
        self._latest_size = LATEST_CACHE_SIZE
        self._lock_fd: int | None = None
        self._started = False
        self._closing = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        try:
            self._prepare_files()
            write_db = self._connect(writer=True)
            row = write_db.execute("PRAGMA user_version").fetchone()
            if row[0] > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {row[0]} is newer than this kubelite ({SCHEMA_VERSION})")
            write_db.executescript(SCHEMA)
            write_db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            meta = dict(write_db.execute("SELECT name, value FROM meta").fetchall())
            self._revision = meta["revision"]
            self._compacted = meta["compacted"]
            self._read_db = self._connect(writer=False)
            self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="sqlite-read")
            self._hub = WatchHub(self._loop, self._fetch_events, self._revision, self._watch_queue_size)
            self._writer = threading.Thread(target=self._write_loop, args=(write_db,), name="sqlite-write",
                                            daemon=True)
            self._writer.start()
        except BaseException:
            self._release()
            raise
        self._started = True

    async def close(self) -> None:
        if not self._started or self._closing:
            return
        self._closing = True
        assert self._hub is not None and self._readers is not None and self._writer is not None
        await self._hub.close()
        self._queue.put(None)  # the writer drains what is queued before it, then stops
        await asyncio.to_thread(self._writer.join)
        self._readers.shutdown(wait=True)
        self._release()
        self._started = False

    def _release(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _prepare_files(self) -> None:
        """Directory 0700, database 0600 before SQLite opens it: SQLite gives -wal/-shm/-journal the database's mode."""
        directory = os.path.dirname(self.path)
        old_umask = os.umask(0o077)
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, mode=0o700, exist_ok=True)
                os.chmod(directory, 0o700)  # makedirs' mode is masked, and only covers the leaf
            else:
                mode = stat.S_IMODE(os.stat(directory).st_mode)
                if mode & 0o077:
                    log.warning("store directory %s is mode %o; 0700 is expected", directory, mode)
            # A lock file of its own, not an flock on the database: opening and closing the database file here
            # would drop the POSIX locks SQLite holds on it for another store of this process.
            lock_fd = os.open(self.path + "-lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock_fd)
                raise StoreError(f"{self.path} is in use by another store") from None
            self._lock_fd = lock_fd
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
                    os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
            for suffix in ("-wal", "-shm", "-journal", "-lock"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(self.path + suffix, 0o600)
        finally:
            os.umask(old_umask)

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        old_umask = os.umask(0o077)  # belt and braces: any file SQLite creates now is born 0600
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 cached_statements=256)
        finally:
            os.umask(old_umask)
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = " + ("FULL" if self.fsync else "NORMAL"))
        db.execute("PRAGMA cache_size = -32000")  # 32 MB of page cache
        # no mmap: each connection's mapping of a big database stays resident (and counts as the server's memory,
        # up to 256 MB per connection); reads through the page cache above cost ~2 ms more per 1,000 objects
        db.execute("PRAGMA mmap_size = 0")
        if not writer:
            db.execute("PRAGMA query_only = 1")
        with self._connections_lock:
            self._connections.append(db)
        return db

    def _reader_db(self) -> sqlite3.Connection:
        db = getattr(self._reader_local, "db", None)
        if db is None:
            db = self._reader_local.db = self._connect(writer=False)
        return db

    async def _in_reader(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if not self._started:
            raise StoreError("store is not started")
        assert self._loop is not None
        return await self._loop.run_in_executor(self._readers, lambda: fn(self._reader_db()))

    # ---------------------------------------------------------------- revisions

    @property
    def current_revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def _check_revision(self, revision: int) -> None:
        if revision > self._revision:
            raise FutureRevisionError(revision, self._revision)
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)

    @staticmethod
    def _check_compacted(db: sqlite3.Connection, revision: int) -> None:
        """Inside a read transaction: the snapshot's compacted revision, not a racing in-memory one."""
        compacted = db.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()[0]
        if revision < compacted:
            raise CompactedError(revision, compacted)

    # ---------------------------------------------------------------- reads

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        if not self._started:
            raise StoreError("store is not started")
        db = self._read_db
        assert db is not None
        if revision == 0:
            latest = self._latest
            if key in latest:
                latest.move_to_end(key)
                return latest[key]
            row = db.execute(
                "SELECT value, create_revision, mod_revision FROM objects WHERE key = ?", (key,)).fetchone()
            kv = None if row is None else KeyValue(key, row[0], row[1], row[2])
            self._remember(key, kv)
            return kv
        self._check_revision(revision)
        db.execute("BEGIN")
        try:
            self._check_compacted(db, revision)
            row = db.execute(
                "SELECT value, create_revision, revision, deleted FROM history"
                " WHERE key = ? AND revision <= ? ORDER BY revision DESC LIMIT 1", (key, revision)).fetchone()
        finally:
            db.execute("COMMIT")
        if row is None or row[3]:
            return None
        return KeyValue(key, row[0], row[1], row[2])

    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str = "") -> ListResult:
        if revision:
            self._check_revision(revision)
        return await self._in_reader(lambda db: self._list(db, prefix, revision, limit, start_key))

    def _list(self, db: sqlite3.Connection, prefix: str, revision: int, limit: int, start_key: str) -> ListResult:
        db.execute("BEGIN")
        try:
            latest = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]
            if revision == 0 or revision >= latest:
                rows, more, remaining = self._list_latest(db, prefix, limit, start_key)
                read_at = revision or latest
            else:
                self._check_compacted(db, revision)
                read_at = revision
                if latest - revision <= PAST_READ_MAX_WRITES:
                    rows, more, remaining = self._list_past(db, prefix, revision, limit, start_key)
                else:
                    rows, more, remaining = self._list_past_by_history(db, prefix, revision, limit, start_key)
        finally:
            db.execute("COMMIT")
        return ListResult([KeyValue(*row) for row in rows], read_at, more, remaining)

    @staticmethod
    def _count_after(db: sqlite3.Connection, prefix: str, after: str) -> int:
        where, params = key_range(prefix, after)
        return db.execute(f"SELECT count(*) FROM objects WHERE {where}", params).fetchone()[0]

    def _list_latest(self, db: sqlite3.Connection, prefix: str, limit: int, start_key: str,
                     ) -> tuple[list[tuple], bool, int]:
        where, params = key_range(prefix, start_key)
        rows = db.execute(f"SELECT key, value, create_revision, mod_revision FROM objects WHERE {where}"
                          " ORDER BY key LIMIT ?", (*params, limit + 1 if limit > 0 else -1)).fetchall()
        if limit <= 0 or len(rows) <= limit:
            return rows, False, 0
        del rows[limit:]
        return rows, True, self._count_after(db, prefix, rows[-1][0])

    def _list_past(self, db: sqlite3.Connection, prefix: str, revision: int, limit: int, start_key: str,
                   ) -> tuple[list[tuple], bool, int]:
        """The keys as they were at `revision`: the latest state, corrected for the keys written since.

        Few keys change while a client pages through a big list, so this costs about what a read of the latest
        state costs, where walking the history costs a lookup per version of every key in the range."""
        where, params = key_range(prefix, start_key)
        # Each key written after `revision` (a scan of the rowid range: NOT INDEXED, or SQLite walks the whole
        # (key, revision) index for the DISTINCT), whether it is live now, and its newest
        # version at or below `revision` (NULL columns: created after; deleted = 1: absent then).
        changed = db.execute(
            "SELECT c.key, EXISTS (SELECT 1 FROM objects WHERE key = c.key),"
            " h.value, h.create_revision, h.revision, h.deleted"
            f" FROM (SELECT DISTINCT key FROM history NOT INDEXED WHERE revision > ? AND {where}) c"
            " LEFT JOIN history h ON h.revision ="
            " (SELECT max(revision) FROM history WHERE key = c.key AND revision <= ?)",
            (revision, *params, revision)).fetchall()
        # Each changed key hides at most one row of the latest state: fetching that many more fills the page.
        fetch = limit + 1 + len(changed) if limit > 0 else -1
        latest = db.execute(f"SELECT key, value, create_revision, mod_revision FROM objects WHERE {where}"
                            " ORDER BY key LIMIT ?", (*params, fetch)).fetchall()
        changed_keys = {row[0] for row in changed}
        rows = [row for row in latest if row[0] not in changed_keys]
        # Past the last row read, the latest state is unknown: older versions there wait for a later page.
        bound = latest[-1][0] if limit > 0 and len(latest) == fetch else None
        rows += [(key, value, create_revision, mod_revision)
                 for key, _, value, create_revision, mod_revision, deleted in changed
                 if mod_revision is not None and not deleted and (bound is None or key <= bound)]
        rows.sort(key=lambda row: row[0])
        if limit <= 0 or len(rows) <= limit:
            return rows, False, 0
        del rows[limit:]
        last = rows[-1][0]
        remaining = self._count_after(db, prefix, last)
        for key, live_now, _, _, mod_revision, deleted in changed:
            if key > last:
                remaining += (mod_revision is not None and not deleted) - live_now
        return rows, True, remaining

    def _list_past_by_history(self, db: sqlite3.Connection, prefix: str, revision: int, limit: int,
                              start_key: str) -> tuple[list[tuple], bool, int]:
        where, params = key_range(prefix, start_key)
        rows = db.execute(self._at_revision_sql(where, "key, value, create_revision, revision")
                          + " ORDER BY key LIMIT ?",
                          (*params, revision, revision, limit + 1 if limit > 0 else -1)).fetchall()
        if limit <= 0 or len(rows) <= limit:
            return rows, False, 0
        del rows[limit:]
        where_after, params_after = key_range(prefix, rows[-1][0])
        remaining = db.execute(self._at_revision_sql(where_after, "count(*)"),
                               (*params_after, revision, revision)).fetchone()[0]
        return rows, True, remaining

    @staticmethod
    def _at_revision_sql(where: str, columns: str) -> str:
        """Keys whose newest version at or below the revision (bound twice) is not a deletion.

        Walking the (key, revision) index in key order lets LIMIT stop early, unlike a GROUP BY + sort."""
        return (f"SELECT {columns} FROM history h WHERE {where} AND revision <= ? AND deleted = 0 AND revision ="
                " (SELECT max(revision) FROM history WHERE key = h.key AND revision <= ?)")

    async def count(self, prefix: str) -> int:
        where, params = key_range(prefix)
        return await self._in_reader(
            lambda db: db.execute(f"SELECT count(*) FROM objects WHERE {where}", params).fetchone()[0])

    async def _fetch_events(self, prefix: str, after: int, limit: int) -> list[Event]:
        return await self._in_reader(lambda db: self._read_events(db, prefix, after, limit))

    def _read_events(self, db: sqlite3.Connection, prefix: str, after: int, limit: int) -> list[Event]:
        where, params = key_range(prefix)
        where = where.replace("key", "h.key")
        db.execute("BEGIN")
        try:
            self._check_compacted(db, after)
            rows = db.execute(
                "SELECT h.revision, h.key, h.value, h.create_revision, h.deleted, p.value FROM history h"
                " LEFT JOIN history p ON p.revision = h.prev_revision"
                f" WHERE h.revision > ? AND {where} ORDER BY h.revision LIMIT ?",
                (after, *params, limit)).fetchall()
        finally:
            db.execute("COMMIT")
        return [Event("DELETE" if deleted else "PUT", key, value, prev, revision, create_revision)
                for revision, key, value, create_revision, deleted, prev in rows]

    # ---------------------------------------------------------------- writes

    async def _submit(self, kind: str, key: str, value: Any, expected: int | None) -> Any:
        if not self._started or self._closing:
            raise StoreError("store is not started")
        assert self._loop is not None
        future = self._loop.create_future()
        self._queue.put(_Op(kind, key, value, expected, future))
        return await future

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, bytes(value), None)

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        return await self._submit("update", key, bytes(value), expected_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        return await self._submit("delete", key, None, expected_revision)

    async def compact(self, revision: int) -> None:
        """Compacting at or below the compacted revision does nothing; above the current one is an error."""
        await self._submit("compact", "", revision, None)

    async def watch(self, prefix: str, from_revision: int) -> Watch:
        if not self._started or self._closing:
            raise StoreError("store is not started")
        if from_revision < self._compacted:
            raise CompactedError(from_revision, self._compacted)
        assert self._hub is not None
        return self._hub.subscribe(prefix, from_revision)

    def _write_loop(self, db: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                batch.append(op)
            self._commit(db, batch)

    def _commit(self, db: sqlite3.Connection, batch: list[_Op]) -> None:
        start_revision = revision = self._revision
        compacted = self._compacted
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for op in batch:
                    try:
                        if op.kind == "compact":
                            compacted = self._apply_compact(db, op.value, compacted, revision)
                        else:
                            revision = self._apply(db, op, revision)
                    except StoreError as err:
                        op.error = err
                if revision != start_revision:
                    db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except Exception as err:  # the batch is lost as a whole: every caller gets the error
            log.exception("store commit failed")
            for op in batch:
                op.error, op.result, op.event = StoreError(f"store write failed: {err}"), None, None
            revision, compacted = start_revision, self._compacted
        # Publish the new revisions before acknowledging: a caller told "written at N" may read at N at once.
        self._revision = revision
        self._compacted = compacted
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._complete, batch)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _apply(self, db: sqlite3.Connection, op: _Op, revision: int) -> int:
        key = op.key
        row = db.execute(
            "SELECT value, create_revision, mod_revision FROM objects WHERE key = ?", (key,)).fetchone()
        current = None if row is None else KeyValue(key, row[0], row[1], row[2])
        if op.kind == "create":
            if current is not None:
                raise KeyExistsError(key)
        else:
            if current is None:
                raise KeyNotFoundError(key)
            if op.expected is not None and current.mod_revision != op.expected:
                raise RevisionMismatchError(key, current)
        revision += 1
        if op.kind == "delete":
            assert current is not None
            db.execute("DELETE FROM objects WHERE key = ?", (key,))
            db.execute("INSERT INTO history (revision, key, value, create_revision, prev_revision, deleted)"
                       " VALUES (?, ?, NULL, 0, ?, 1)", (revision, key, current.mod_revision))
            op.result = (current, revision)
            op.event = Event("DELETE", key, None, current.value, revision, 0)
            return revision
        create_revision = revision if current is None else current.create_revision
        prev_revision = 0 if current is None else current.mod_revision
        db.execute("INSERT OR REPLACE INTO objects (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)",
                   (key, op.value, create_revision, revision))
        db.execute("INSERT INTO history (revision, key, value, create_revision, prev_revision, deleted)"
                   " VALUES (?, ?, ?, ?, ?, 0)", (revision, key, op.value, create_revision, prev_revision))
        op.result = KeyValue(key, op.value, create_revision, revision)
        op.event = Event("PUT", key, op.value, None if current is None else current.value, revision,
                         create_revision)
        return revision

    @staticmethod
    def _apply_compact(db: sqlite3.Connection, target: int, compacted: int, revision: int) -> int:
        if target > revision:
            raise FutureRevisionError(target, revision)
        if target <= compacted:
            return compacted
        # A version older than `target` goes when a newer version of its key is at or below `target`.  Every
        # such newer version in (compacted, target] names it as prev_revision; older ones went at the last
        # compaction.  Deletion markers below `target` go too: no key there reads the same as a deleted key.
        db.execute("DELETE FROM history WHERE revision IN (SELECT prev_revision FROM history"
                   " WHERE revision > ? AND revision <= ? AND prev_revision > 0)", (compacted, target))
        db.execute("DELETE FROM history WHERE revision >= ? AND revision < ? AND deleted = 1",
                   (compacted, target))
        db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (target,))
        return target

    def _remember(self, key: str, kv: KeyValue | None) -> None:
        latest = self._latest
        latest[key] = kv
        latest.move_to_end(key)
        if len(latest) > self._latest_size:
            latest.popitem(last=False)

    def _complete(self, batch: list[_Op]) -> None:
        events = []
        for op in batch:
            future = op.future
            if op.error is not None:
                if future is not None and not future.done():
                    future.set_exception(op.error)
                continue
            if future is not None and not future.done():
                future.set_result(op.result)
            if op.event is not None:
                events.append(op.event)
                ev = op.event
                self._remember(ev.key, None if ev.type == "DELETE" else
                               KeyValue(ev.key, ev.value, ev.create_revision, ev.revision))
        if self._hub is not None:
            self._hub.publish(events)

    # ---------------------------------------------------------------- maintenance

    async def checkpoint(self, *, vacuum: bool = False) -> None:
        """Fold the WAL into the database file and truncate it; with vacuum, rewrite the file too.

        After re-encrypting secrets, old plaintext versions linger in the WAL and in free pages until this runs."""
        def run() -> None:
            db = self._connect(writer=True)
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                if vacuum:
                    db.execute("VACUUM")
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                with self._connections_lock:
                    self._connections.remove(db)
                db.close()
        await asyncio.to_thread(run)

