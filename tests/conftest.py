"""Shared fixtures: a kubelite API server started as a real subprocess (free port, temp data dir)."""

import pytest

from kubelite_cluster import Cluster, free_port


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """One API server for the session; tests keep to their own namespaces or names."""
    base = tmp_path_factory.mktemp("kubelite")
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "kube-cache"))
    c.start()
    yield c
    c.stop()


@pytest.fixture
def fresh_cluster(tmp_path):
    """A cluster of the test's own, for tests that restart or kill it."""
    c = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "kube-cache"))
    c.start()
    yield c
    c.stop()
