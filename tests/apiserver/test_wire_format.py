"""Bytes on the wire as upstream writes them: bodies ending with Go's encoder newline, watch streams that end
with the chunked terminator (on timeoutSeconds and on shutdown), Go's zero values in stored objects."""

from __future__ import annotations

import json
import logging
import signal
import time

import pytest
from kubernetes import client, config, watch


@pytest.fixture(scope="module")
def api(cluster):
    return config.new_client_from_config(config_file=cluster.kubeconfig)


def _get(api, path: str, accept: str = "application/json"):
    return api.rest_client.pool_manager.request("GET", api.configuration.host + path, headers={"Accept": accept})


def test_bodies_end_with_the_encoder_newline(api):
    for path in ("/api/v1/namespaces/default", "/api/v1/namespaces", "/api", "/apis", "/api/v1",
                 "/api/v1/namespaces/default/configmaps/missing"):
        r = _get(api, path)
        assert r.data.endswith(b"}\n") and not r.data.endswith(b"\n\n"), (path, r.data[-20:])
    table = _get(api, "/api/v1/namespaces", "application/json;as=Table;v=v1;g=meta.k8s.io")
    assert table.data.endswith(b"}\n")
    chunked = _get(api, "/api/v1/namespaces?limit=1", "application/json;as=Table;v=v1;g=meta.k8s.io")
    assert chunked.data.endswith(b"}\n")
    # /version is WriteRawJSON's: indented, and no newline
    version = _get(api, "/version").data
    assert version.startswith(b'{\n  "major": "1",') and version.endswith(b"}")


def test_watch_ends_cleanly_on_timeout(api, caplog):
    core = client.CoreV1Api(api)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        events = list(watch.Watch().stream(core.list_namespace, timeout_seconds=1))
    assert events and 0.9 < time.monotonic() - started < 5
    assert "ProtocolError" not in caplog.text and "ended prematurely" not in caplog.text
    r = api.rest_client.pool_manager.request(
        "GET", api.configuration.host + "/api/v1/namespaces?watch=1&timeoutSeconds=1", preload_content=False)
    data = b"".join(r.stream(1024))  # raises ProtocolError if the chunked body is cut
    assert all(json.loads(line)["type"] == "ADDED" for line in data.splitlines())


def test_watch_ends_cleanly_on_shutdown(fresh_cluster):
    api = config.new_client_from_config(config_file=fresh_cluster.kubeconfig)
    r = api.rest_client.pool_manager.request(
        "GET", api.configuration.host + "/api/v1/namespaces?watch=1", preload_content=False)
    chunks = r.stream(1024)
    first = next(chunks)
    assert first.startswith(b'{"type":"ADDED"')
    fresh_cluster.stop(signal.SIGTERM)
    rest = b"".join(chunks)  # ProtocolError: Response ended prematurely, before the fix
    assert (first + rest).endswith(b"}\n")
