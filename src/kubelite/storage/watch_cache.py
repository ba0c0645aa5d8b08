"""The etcd store's watch cache: the latest KeyValue of every key under the store's prefix, as kube-apiserver's
cacher keeps one, fed by the store's one etcd watch stream (and by its own writes when they are next in line).

The cache holds the state at exactly `revision`: every event up to it is applied, none after.  Reads at the latest
revision are answered here once `revision` has reached what the read needs; a read at a past revision R is
answered here too when nothing under the read's resource changed in (R, revision] — the usual case for the later
pages of a paged LIST — and goes to etcd otherwise.  Keys are the API layer's (`/registry/...`); their order is
etcd's byte order of the stored keys (code point order of str equals byte order of UTF-8).  Values are the bytes
etcd returned, shared with every reader: KeyValue is frozen and bytes immutable, so there is no copy per read.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from bisect import bisect_left, bisect_right

from kubelite.storage.interface import Event, KeyValue

ROOT = "/registry"
_SEGMENT_START = len(ROOT) + 1


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with prefix (None: no upper bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def resource_of(key: str) -> str:
    """The resource part of a key or prefix ('/registry/pods/' of '/registry/pods/ns/a'), '' when it has none:
    changes are tracked per resource, so that a past read of one resource is not sent to etcd by another's writes."""
    if not key.startswith(ROOT + "/"):
        return ""
    cut = key.find("/", _SEGMENT_START)
    return key[:cut + 1] if cut > 0 else ""


class WatchCache:
    def __init__(self) -> None:
        self._values: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # sorted
        self.revision = 0  # the state held is the state at this revision
        self.ready = False
        # Past reads are answerable here only at revisions >= floor (the revision the cache was loaded at: what was
        # deleted before that is not known) and >= the last change of the resource read.
        self.floor = 0
        self._changed: dict[str, int] = {}  # resource -> revision of its last event
        self._changed_any = 0
        # This process's acknowledged writes that are not next in line yet (concurrent writes are acknowledged out
        # of order): revision -> (key, KeyValue or None for a delete)
        self._own: dict[int, tuple[str, KeyValue | None]] = {}
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    # ---------------------------------------------------------------- filling

    def load(self, items: list[KeyValue], revision: int) -> None:
        """Replace the content by a full list read at `revision` (items in key order)."""
        self._values = {kv.key: kv for kv in items}
        self._keys = [kv.key for kv in items]
        self.revision = self.floor = revision
        self._changed.clear()
        self._changed_any = revision
        self._own.clear()
        self.ready = True
        self._wake()

    def invalidate(self) -> None:
        """Stop answering reads until the next load (the watch lost its place: events were missed)."""
        self.ready = False
        self._values = {}
        self._keys = []
        self._changed.clear()
        self._own.clear()
        self.release_waiters()

    def _put(self, kv: KeyValue) -> None:
        key = kv.key
        if key not in self._values:
            keys = self._keys
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                keys.insert(bisect_left(keys, key), key)
        self._values[key] = kv

    def _delete(self, key: str) -> None:
        if self._values.pop(key, None) is not None:
            keys = self._keys
            index = bisect_left(keys, key)
            if index < len(keys) and keys[index] == key:
                del keys[index]

    def _touch(self, key: str, revision: int) -> None:
        self._changed[resource_of(key)] = revision
        self._changed_any = revision

    def apply(self, events: list[Event]) -> None:
        """Events from the watch stream, in revision order; those the cache already holds are skipped."""
        if not self.ready:
            return
        for event in events:
            revision = event.revision
            if revision <= self.revision:
                continue
            if event.type == "PUT":
                assert event.value is not None
                self._put(KeyValue(event.key, event.value, event.create_revision, revision))
            else:
                self._delete(event.key)
            self._touch(event.key, revision)
            self.revision = revision
        self._settle_own()
        self._wake()

    def _settle_own(self) -> None:
        """After the watch moved the cache on: forget our writes it brought, apply those now next in line."""
        own = self._own
        if own:
            for stale in [r for r in own if r <= self.revision]:
                del own[stale]
            self._apply_own()

    def apply_own(self, kv: KeyValue | None, key: str, revision: int) -> None:
        """This process's write, acknowledged by etcd: applied at once when it is the very next revision (a revision
        is one transaction, so nothing can be missing before it), or as soon as the writes before it are in; a gap
        that is another client's write waits for the watch stream, which brings everything in order."""
        if not self.ready or revision <= self.revision:
            return
        self._own[revision] = (key, kv)
        if revision == self.revision + 1:
            self._apply_own()
            self._wake()

    def _apply_own(self) -> None:
        own = self._own
        while (entry := own.pop(self.revision + 1, None)) is not None:
            key, kv = entry
            if kv is None:
                self._delete(key)
            else:
                self._put(kv)
            self.revision += 1
            self._touch(key, self.revision)

    def advance(self, revision: int) -> None:
        """A progress notification: no event up to `revision` is missing."""
        if self.ready and revision > self.revision:
            self.revision = revision
            self._settle_own()
            self._wake()

    # ---------------------------------------------------------------- waiting

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and (waiters[0][0] <= self.revision or not self.ready):
            future = heapq.heappop(waiters)[2]
            if not future.done():
                future.set_result(None)

    def release_waiters(self) -> None:
        """Let every waiting read go on now (to etcd): the watch that was to bring their revision is cut off."""
        waiters, self._waiters = self._waiters, []
        for _, _, future in waiters:
            if not future.done():
                future.set_result(None)

    async def wait(self, revision: int, timeout: float) -> bool:
        """Until the cache holds `revision` (True), or `timeout` passes or the cache is invalidated (False)."""
        if self.ready and self.revision >= revision:
            return True
        if not self.ready:
            return False
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (revision, next(self._order), future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        return self.ready and self.revision >= revision

    # ---------------------------------------------------------------- reads

    def serves(self, prefix: str, revision: int) -> bool:
        """Whether the state held equals the state at past `revision` for every key under prefix."""
        if not self.ready or revision < self.floor or revision > self.revision:
            return False
        resource = resource_of(prefix)
        changed = self._changed.get(resource, 0) if resource else self._changed_any
        return changed <= revision

    def get(self, key: str) -> KeyValue | None:
        return self._values.get(key)

    def get_at(self, key: str, revision: int) -> tuple[bool, KeyValue | None]:
        """(answered, value) for a read of key as it was at past `revision`."""
        kv = self._values.get(key)
        if kv is not None and kv.mod_revision <= revision and self.floor <= revision <= self.revision:
            return True, kv  # unchanged since it was written, at or before `revision`
        if self.serves(key, revision):
            return True, kv if kv is not None and kv.mod_revision <= revision else None
        return False, None

    def _bounds(self, prefix: str, start_key: str) -> tuple[int, int]:
        keys = self._keys
        if ROOT.startswith(prefix):  # "", "/", "/reg": every key
            low, high = 0, len(keys)
        else:
            low = bisect_left(keys, prefix)
            end = _prefix_end(prefix)
            high = len(keys) if end is None else bisect_left(keys, end, low)
        if start_key and start_key >= prefix and start_key.startswith(ROOT):
            low = bisect_right(keys, start_key, low, high)
        return low, high

    def list(self, prefix: str, start_key: str, limit: int) -> tuple[list[KeyValue], bool, int]:
        """(items, more, remaining) as etcd's range with `limit` answers them."""
        low, high = self._bounds(prefix, start_key)
        count = high - low
        if limit > 0 and count > limit:
            high = low + limit
        values = self._values
        items = [values[key] for key in self._keys[low:high]]
        more = len(items) < count
        return items, more, count - len(items) if more else 0

    def count(self, prefix: str) -> int:
        low, high = self._bounds(prefix, "")
        return high - low

    @property
    def size(self) -> int:
        return len(self._keys)
