"""Store fixtures: one real etcd for the session (each test gets a key prefix of its own) and `store`
parametrised over the SQLite and etcd backends, for the conformance suite."""

from __future__ import annotations

import itertools
import os

import pytest

from kubelite.storage.sqlite import SQLiteStore
from storage.etcd_process import SKIP_REASON, EtcdMember, etcd_available

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    if not etcd_available():
        pytest.skip(SKIP_REASON)
    member = EtcdMember("store-tests", str(tmp_path_factory.mktemp("etcd") / "member"))
    member.start()
    yield member
    member.stop()


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix no other test uses: tests share one etcd, revisions are global to it."""
    return f"/test-{os.getpid()}-{next(_prefixes)}/registry"


@pytest.fixture(params=["sqlite", "etcd"])
def make_store(request, tmp_path):
    """make_store(**options) -> an unstarted store of the backend under test, on the same data as the first one
    (the same SQLite file, the same etcd prefix)."""

    def make(**options):
        if request.param == "sqlite":
            store = SQLiteStore(str(tmp_path / "data" / "state.db"), fsync=False, **options)
        else:
            from kubelite.storage.etcd import EtcdStore

            server = request.getfixturevalue("etcd_server")
            store = EtcdStore([server.endpoint], prefix=request.getfixturevalue("etcd_prefix"), **options)
        return store

    make.backend = request.param
    yield make


@pytest.fixture
async def store(make_store):
    s = make_store()
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def base(store) -> int:
    """The store's revision when the test began: revisions below are `base + n` (etcd's are global)."""
    return store.current_revision
