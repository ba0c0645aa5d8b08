"""Fixtures for the client tests: an ApiClient on the session cluster and a namespace of the test's own."""

from __future__ import annotations

import uuid

import pytest

from client.client_objects import NAMESPACES
from kubelite.client.rest import ApiClient


@pytest.fixture
async def api(cluster):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def ns(api):
    name = f"client-{uuid.uuid4().hex[:8]}"
    await api.create(NAMESPACES, {"metadata": {"name": name}})
    yield name

