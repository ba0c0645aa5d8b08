"""Table lists asked for in chunks are answered whole (apiserver/table_lists.py); other lists keep their pages."""

from __future__ import annotations

import os

import pytest
import requests

from kubelite.apiserver import table_lists

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
NS = "/api/v1/namespaces/tablelists"
N = table_lists.PAGE + 7  # more than one page of the server's own reads


@pytest.fixture(scope="module")
def http(cluster):
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(cluster.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    s.base = cluster.url
    s.post(s.base + "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "tablelists"}})
    for i in range(N):
        r = s.post(s.base + NS + "/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": f"cm-{i:04d}", "labels": {"odd": str(i % 2)}},
                                                      "data": {"i": str(i)}})
        assert r.status_code == 201, r.text
    return s


def test_a_chunked_table_list_comes_whole(http):
    r = http.get(http.base + NS + "/configmaps?limit=500", headers={"Accept": TABLE})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json;as=Table")
    table = r.json()
    assert table["kind"] == "Table" and "continue" not in table["metadata"]
    assert int(table["metadata"]["resourceVersion"]) > 0
    names = [row["cells"][0] for row in table["rows"]]
    assert names == sorted(f"cm-{i:04d}" for i in range(N))
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Data", "Age"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_selectors_still_apply(http):
    r = http.get(http.base + NS + "/configmaps?limit=3&labelSelector=odd%3D1", headers={"Accept": TABLE})
    assert len(r.json()["rows"]) == N // 2


def test_json_lists_and_continued_tables_keep_their_pages(http):
    first = http.get(http.base + NS + "/configmaps?limit=3").json()
    assert len(first["items"]) == 3 and first["metadata"]["continue"]
    assert first["metadata"]["remainingItemCount"] == N - 3
    nxt = http.get(http.base + NS + "/configmaps?limit=3&continue=" + first["metadata"]["continue"],
                   headers={"Accept": TABLE}).json()
    assert [row["cells"][0] for row in nxt["rows"]] == ["cm-0003", "cm-0004", "cm-0005"]
    assert nxt["metadata"]["continue"]


def test_bad_input_is_a_status_before_any_row(http):
    r = http.get(http.base + NS + "/configmaps?limit=3&labelSelector=a%3D%3D%3Db", headers={"Accept": TABLE})
    assert r.status_code == 400 and r.json()["kind"] == "Status"


def test_kubectl_prints_every_row(cluster, http):
    out = cluster.kubectl("get", "configmaps", "-n", "tablelists", "--chunk-size=2", "--no-headers")
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert [n for n in names if n.startswith("cm-")] == [f"cm-{i:04d}" for i in range(N)]
