"""The one Store interface every backend (SQLite, etcd) implements: an etcd-like revisioned key-value store.

Values are opaque bytes (the API layer stores object JSON without metadata.resourceVersion; the
resourceVersion is the key's mod_revision, injected on read, as upstream's etcd3 store does).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal


@dataclass(slots=True, frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(slots=True, frozen=True)
class Event:
    type: Literal["PUT", "DELETE"]
    key: str
    value: bytes | None  # new value; None for DELETE
    prev_value: bytes | None  # value before this event (None on create)
    revision: int  # the revision of this write
    create_revision: int  # create revision of the key (0 on DELETE)


@dataclass(slots=True, frozen=True)
class ListResult:
    items: list[KeyValue]
    revision: int  # the store revision the list was read at
    more: bool  # True when `limit` cut the list short
    remaining: int = 0  # how many keys are left after the last item (only meaningful when more)


class StoreError(Exception):
    pass


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class RevisionMismatchError(StoreError):
    """The key's mod_revision is not the expected one. `current` is the live value (None if deleted)."""

    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(key)
        self.key = key
        self.current = current


class CompactedError(StoreError):
    """The asked revision is at or below the compacted revision: the API answers 410 Expired."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} compacted (at {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"Too large resource version: {requested}, current: {current}")
        self.requested = requested
        self.current = current


class Watch(abc.ABC):
    """Every event under a prefix after a revision, in revision order, no gaps, no duplicates."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class Store(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def current_revision(self) -> int: ...

    @property
    @abc.abstractmethod
    def compacted_revision(self) -> int: ...

    @abc.abstractmethod
    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """The key at the latest revision (0) or as it was at `revision`."""

    @abc.abstractmethod
    async def list(self, prefix: str, *, revision: int = 0, limit: int = 0, start_key: str = "") -> ListResult:
        """Keys under prefix in key order, at the latest revision (0) or at `revision`.

        `start_key` (exclusive) continues a paged list; `limit` 0 means no limit."""

    @abc.abstractmethod
    async def count(self, prefix: str) -> int: ...

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Write if absent (raises KeyExistsError). Returns the stored KeyValue once durable."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> KeyValue:
        """Write if the key exists and (when given) its mod_revision equals expected_revision."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        """Delete if present (and at expected_revision when given). Returns (previous KeyValue, delete revision)."""

    @abc.abstractmethod
    async def watch(self, prefix: str, from_revision: int) -> Watch:
        """Events with revision > from_revision under prefix. Raises CompactedError if from_revision < compacted_revision."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history before `revision`, as etcd does: afterwards get/list at a revision < `revision`
        and watch with from_revision < `revision` raise CompactedError; reads at `revision` or later work."""
