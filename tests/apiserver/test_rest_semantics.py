"""Kubernetes REST semantics over raw HTTPS: generation, finalizers, graceful deletion, dry run,
deletecollection, paging, watch resume/bookmarks/timeouts and 410 after compaction."""

from __future__ import annotations

import os
import time

import orjson
import pytest
import requests


def session(cluster):
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(cluster.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    s.base = cluster.url
    return s


@pytest.fixture(scope="module")
def http(cluster):
    s = session(cluster)
    s.post(s.base + "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "semantics"}})
    return s


NS = "/api/v1/namespaces/semantics"
DEPLOY = "/apis/apps/v1/namespaces/semantics/deployments"


def deployment(name, image="nginx"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_generation_bumps_only_on_spec_change(http):
    d = http.post(http.base + DEPLOY, json=deployment("gen")).json()
    assert d["metadata"]["generation"] == 1 and d["status"] == {}
    d = http.patch(http.base + DEPLOY + "/gen", data=b'{"metadata":{"labels":{"x":"y"}}}',
                   headers={"Content-Type": "application/merge-patch+json"}).json()
    assert d["metadata"]["generation"] == 1
    d = http.patch(http.base + DEPLOY + "/gen", data=b'{"spec":{"replicas":3}}',
                   headers={"Content-Type": "application/merge-patch+json"}).json()
    assert d["metadata"]["generation"] == 2
    # status writes through the main resource are ignored; the status subresource takes them
    d["status"] = {"replicas": 7}
    d = http.put(http.base + DEPLOY + "/gen", json=d).json()
    assert d["status"] == {} and d["metadata"]["generation"] == 2
    d["status"] = {"replicas": 7, "observedGeneration": 2}
    d = http.put(http.base + DEPLOY + "/gen/status", json=d).json()
    assert d["status"]["replicas"] == 7 and d["metadata"]["generation"] == 2
    # an update that changes nothing writes nothing
    again = http.put(http.base + DEPLOY + "/gen", json=d).json()
    assert again["metadata"]["resourceVersion"] == d["metadata"]["resourceVersion"]


def test_finalizers_keep_the_object_until_removed(http):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fin", "finalizers": ["example.com/hold"]}}
    http.post(http.base + NS + "/configmaps", json=cm)
    r = http.delete(http.base + NS + "/configmaps/fin")
    assert r.status_code == 200
    held = http.get(http.base + NS + "/configmaps/fin").json()
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["deletionGracePeriodSeconds"] == 0
    r = http.patch(http.base + NS + "/configmaps/fin", data=b'{"metadata":{"finalizers":null}}',
                   headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200
    assert http.get(http.base + NS + "/configmaps/fin").status_code == 404


def test_propagation_policy_adds_gc_finalizers(http):
    http.post(http.base + DEPLOY, json=deployment("fg"))
    r = http.delete(http.base + DEPLOY + "/fg", json={"propagationPolicy": "Foreground"})
    assert r.status_code == 200
    held = http.get(http.base + DEPLOY + "/fg").json()
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"] and held["metadata"]["deletionTimestamp"]
    http.post(http.base + DEPLOY, json=deployment("orphan"))
    http.delete(http.base + DEPLOY + "/orphan", json={"propagationPolicy": "Orphan"})
    assert http.get(http.base + DEPLOY + "/orphan").json()["metadata"]["finalizers"] == ["orphan"]
    r = http.delete(http.base + DEPLOY + "/orphan", json={"propagationPolicy": "Sideways"})
    assert r.status_code == 422


def test_bound_pods_are_deleted_gracefully(http):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound"},
           "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]}}
    http.post(http.base + NS + "/pods", json=pod)
    http.delete(http.base + NS + "/pods/bound", json={"gracePeriodSeconds": 15})
    held = http.get(http.base + NS + "/pods/bound").json()
    assert held["metadata"]["deletionGracePeriodSeconds"] == 15
    # the node agent finishes the deletion with a zero grace period
    assert http.delete(http.base + NS + "/pods/bound", json={"gracePeriodSeconds": 0}).status_code == 200
    assert http.get(http.base + NS + "/pods/bound").status_code == 404


def test_dry_run_writes_nothing(http):
    r = http.post(http.base + NS + "/configmaps?dryRun=All",
                  json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}})
    assert r.status_code == 201 and r.json()["metadata"]["name"] == "dry"
    assert http.get(http.base + NS + "/configmaps/dry").status_code == 404
    http.post(http.base + NS + "/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "wet"}})
    assert http.delete(http.base + NS + "/configmaps/wet?dryRun=All").status_code == 200
    assert http.get(http.base + NS + "/configmaps/wet").status_code == 200
    assert http.post(http.base + NS + "/configmaps?dryRun=Bogus", json={}).status_code == 400


def test_delete_collection_with_selector(http):
    for i in range(4):
        http.post(http.base + NS + "/secrets", json={"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": f"s{i}", "labels": {"group": "even" if i % 2 == 0 else "odd"}}})
    r = http.delete(http.base + NS + "/secrets?labelSelector=group%3Deven")
    assert r.status_code == 200 and sorted(i["metadata"]["name"] for i in r.json()["items"]) == ["s0", "s2"]
    left = http.get(http.base + NS + "/secrets").json()["items"]
    assert sorted(i["metadata"]["name"] for i in left) == ["s1", "s3"]


def test_generate_name_and_paging(http):
    names = set()
    for _ in range(7):
        r = http.post(http.base + NS + "/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap",
                                                            "metadata": {"generateName": "page-",
                                                                         "labels": {"paged": "yes"}}})
        assert r.status_code == 201
        name = r.json()["metadata"]["name"]
        assert name.startswith("page-") and len(name) == 10
        names.add(name)
    got, token, pages = [], "", 0
    while True:
        url = http.base + NS + "/configmaps?labelSelector=paged%3Dyes&limit=3" + (f"&continue={token}" if token else "")
        body = http.get(url).json()
        got += [i["metadata"]["name"] for i in body["items"]]
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert pages == 3 and set(got) == names and len(got) == 7
    body = http.get(http.base + NS + "/configmaps?limit=2").json()
    assert body["metadata"]["remainingItemCount"] >= 5


def watch_lines(http, path, params, limit, timeout=10):
    events = []
    with http.get(http.base + path, params={"watch": "true", **params}, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines():
            if line:
                events.append(orjson.loads(line))
                if len(events) >= limit:
                    break
    return events


def test_watch_resume_bookmarks_and_timeout(http):
    rv = http.get(http.base + NS + "/configmaps").json()["metadata"]["resourceVersion"]
    http.post(http.base + NS + "/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "wa", "labels": {"w": "1"}}})
    http.patch(http.base + NS + "/configmaps/wa", data=b'{"metadata":{"labels":{"w":"2"}}}',
               headers={"Content-Type": "application/merge-patch+json"})
    http.delete(http.base + NS + "/configmaps/wa")
    events = watch_lines(http, NS + "/configmaps", {"resourceVersion": rv}, 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert revs == sorted(revs) and revs[0] > int(rv)
    # a label selector turns a change that leaves the selection into DELETED
    filtered = watch_lines(http, NS + "/configmaps", {"resourceVersion": rv, "labelSelector": "w=1"}, 2)
    assert [e["type"] for e in filtered] == ["ADDED", "DELETED"]
    # timeoutSeconds ends the stream
    began = time.monotonic()
    with http.get(http.base + NS + "/configmaps", params={"watch": "1", "timeoutSeconds": "1",
                                                          "resourceVersion": revs[-1]}, stream=True) as r:
        assert list(r.iter_lines()) == []
    assert time.monotonic() - began < 5


def test_watch_from_zero_sends_current_state(http):
    http.post(http.base + NS + "/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "present"}})
    events = watch_lines(http, NS + "/configmaps", {"resourceVersion": "0", "fieldSelector": "metadata.name=present"}, 1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "present"


def test_compacted_watch_and_list_answer_410(tmp_path):
    from kubelite_cluster import Cluster, free_port

    c = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "cache"),
                extra_args=["--etcd-compaction-interval", "0.5"])
    c.start()
    try:
        s = session(c)
        cms = "/api/v1/namespaces/default/configmaps"
        first = s.post(s.base + cms, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}).json()
        old = first["metadata"]["resourceVersion"]
        for i in range(3):
            s.post(s.base + cms, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"b{i}"}})
        time.sleep(1.6)
        s.post(s.base + cms, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
        time.sleep(1.2)
        events = watch_lines(s, cms, {"resourceVersion": old}, 1)
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
        r = s.get(s.base + cms, params={"resourceVersion": old, "resourceVersionMatch": "Exact"})
        assert r.status_code == 410 and r.json()["reason"] == "Expired"
    finally:
        c.stop()


def svc(name, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


def test_service_ip_and_node_port_allocation(http):
    a = http.post(http.base + NS + "/services", json=svc("alloc-a", clusterIP="10.96.200.7")).json()
    assert a["spec"]["clusterIP"] == "10.96.200.7" and a["spec"]["clusterIPs"] == ["10.96.200.7"]
    r = http.post(http.base + NS + "/services", json=svc("alloc-b", clusterIP="10.96.200.7"))
    assert r.status_code == 422
    assert r.json()["message"] == ('Service "alloc-b" is invalid: spec.clusterIPs: Invalid value: '
                                   '[]string{"10.96.200.7"}: failed to allocate IP 10.96.200.7: provided IP is '
                                   'already allocated')
    r = http.post(http.base + NS + "/services", json=svc("alloc-c", clusterIP="192.168.1.1"))
    assert r.status_code == 422 and "is not in the valid range. The range of valid IPs is 10.96.0.0/12" in \
        r.json()["message"]
    np = svc("np-a", type="NodePort")
    np["spec"]["ports"][0]["nodePort"] = 31068
    assert http.post(http.base + NS + "/services", json=np).status_code == 201
    np["metadata"]["name"] = "np-b"
    r = http.post(http.base + NS + "/services", json=np)
    assert r.status_code == 422
    assert r.json()["message"] == ('Service "np-b" is invalid: spec.ports[0].nodePort: Invalid value: 31068: '
                                   'provided port is already allocated')
    np["spec"]["ports"][0]["nodePort"] = 29999
    r = http.post(http.base + NS + "/services", json=np)
    assert r.status_code == 422 and "The range of valid ports is 30000-32767" in r.json()["message"]
    headless = http.post(http.base + NS + "/services", json=svc("headless", clusterIP="None")).json()
    assert headless["spec"]["clusterIP"] == "None"
    # freed on delete: the address can be taken again
    http.delete(http.base + NS + "/services/alloc-a")
    assert http.post(http.base + NS + "/services", json=svc("alloc-d", clusterIP="10.96.200.7")).status_code == 201
    # switching to ClusterIP releases the node port; switching back allocates one
    patched = http.patch(http.base + NS + "/services/np-a", data=b'{"spec":{"type":"ClusterIP"}}',
                         headers={"Content-Type": "application/merge-patch+json"}).json()
    assert "nodePort" not in patched["spec"]["ports"][0]
    np["metadata"]["name"] = "np-c"
    np["spec"]["ports"][0]["nodePort"] = 31068
    assert http.post(http.base + NS + "/services", json=np).status_code == 201


def test_status_patch_keeps_spec_and_labels_as_stored(http):
    """A patch through /status changes only status (and metadata other than labels), whatever it carries."""
    assert http.post(http.base + DEPLOY, json=deployment("stpatch")).status_code == 201
    url = http.base + DEPLOY + "/stpatch/status"
    for body in ({"status": {"replicas": 3}},
                 {"spec": {"replicas": 9}, "metadata": {"labels": {"x": "y"}}, "status": {"replicas": 4}}):
        for ctype in ("application/strategic-merge-patch+json", "application/merge-patch+json"):
            r = http.patch(url, data=orjson.dumps(body), headers={"Content-Type": ctype})
            assert r.status_code == 200, r.text
            d = r.json()
            assert d["status"]["replicas"] == body["status"]["replicas"]
            assert d["spec"]["replicas"] == 1 and "x" not in (d["metadata"].get("labels") or {})
    stored = http.get(http.base + DEPLOY + "/stpatch").json()
    assert stored["spec"]["replicas"] == 1 and stored["status"]["replicas"] == 4
