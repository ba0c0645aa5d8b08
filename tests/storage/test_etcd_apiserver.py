"""kubelite's API server on a real etcd: the real kubectl writes, etcdctl sees upstream's key layout, and an
etcd outage answers a Status with a readable message."""

from __future__ import annotations

import json
import time

import pytest

from kubelite_cluster import Cluster, free_port
from storage.etcd_process import SKIP_REASON, EtcdMember, etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason=SKIP_REASON)


def test_pods_created_with_kubectl_are_in_etcd(tmp_path):
    member = EtcdMember("api", str(tmp_path / "etcd"))
    member.start()
    cluster = Cluster(data_dir=str(tmp_path / "data"), port=free_port(), cache_dir=str(tmp_path / "kube-cache"),
                      extra_args=["--etcd-servers", member.endpoint, "--etcd-compaction-interval", "1"])
    try:
        cluster.start()
        cluster.kubectl("run", "web", "--image=nginx", check=True)
        keys = member.etcdctl("get", "--prefix", "--keys-only", "/registry/pods").stdout.split()
        assert keys == ["/registry/pods/default/web"]
        stored = json.loads(member.etcdctl("get", "--print-value-only", "/registry/pods/default/web").stdout)
        assert stored["metadata"]["name"] == "web" and "resourceVersion" not in stored["metadata"]
        got = json.loads(cluster.kubectl("get", "pod", "web", "-o", "json", check=True).stdout)
        revision = json.loads(member.etcdctl("get", "/registry/pods/default/web", "-w", "json").stdout)
        assert got["metadata"]["resourceVersion"] == str(revision["kvs"][0]["mod_revision"])
        cluster.kubectl("label", "pod", "web", "tier=front", check=True)
        # the compaction loop compacts etcd too: etcd refuses reads at the first revisions after a few ticks
        deadline = time.monotonic() + 10
        while True:
            old = member.etcdctl("get", "/registry/pods/default/web", "--rev", "2", check=False)
            if old.returncode != 0 and "compacted" in old.stderr:
                break
            assert time.monotonic() < deadline, old
            time.sleep(0.3)
        member.stop()
        failed = cluster.kubectl("create", "configmap", "during-outage")
        assert failed.returncode != 0
        assert "etcd unavailable" in failed.stderr and "Traceback" not in failed.stderr
        # reads are not answered from the watch cache while its watch is cut off: they fail the same way
        read = cluster.kubectl("get", "configmaps")
        assert read.returncode != 0 and "(ServiceUnavailable)" in read.stderr, read.stderr
        assert "Traceback" not in cluster.log()
        member.start()
        cluster.kubectl("create", "configmap", "after-outage", check=True)
        listed = cluster.kubectl("get", "configmaps", "-o", "name", check=True).stdout.split()
        assert "configmap/after-outage" in listed and "configmap/during-outage" not in listed
    finally:
        cluster.stop()
        member.stop()


def test_two_api_servers_on_one_etcd_page_and_see_each_others_writes(tmp_path):
    """The watch cache behind LIST: chunked lists (limit + continue) through one server of what the other wrote,
    with the resourceVersions etcd has."""
    member = EtcdMember("api2", str(tmp_path / "etcd"))
    member.start()
    servers = [Cluster(data_dir=str(tmp_path / f"data{i}"), port=free_port(), cache_dir=str(tmp_path / f"kc{i}"),
                       extra_args=["--etcd-servers", member.endpoint]) for i in range(2)]
    try:
        for server in servers:
            server.start()
        a, b = servers
        for i in range(7):
            a.kubectl("create", "configmap", f"cm-{i}", check=True)
        deadline = time.monotonic() + 5
        while True:  # b's watch brings a's writes within milliseconds; kubectl takes longer than that to start
            listed = json.loads(b.kubectl("get", "configmaps", "--chunk-size=2", "-o", "json", check=True).stdout)
            names = [i["metadata"]["name"] for i in listed["items"] if i["metadata"]["name"].startswith("cm-")]
            if len(names) == 7 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert names == [f"cm-{i}" for i in range(7)]
        stored = json.loads(member.etcdctl("get", "--prefix", "/registry/configmaps/default/cm-", "-w", "json").stdout)
        assert [i["metadata"]["resourceVersion"] for i in listed["items"] if i["metadata"]["name"].startswith("cm-")] \
            == [str(kv["mod_revision"]) for kv in stored["kvs"]]
        b.kubectl("label", "configmap", "cm-3", "by=b", check=True)
        got = json.loads(b.kubectl("get", "configmap", "cm-3", "-o", "json", check=True).stdout)  # its own write
        assert got["metadata"]["labels"] == {"by": "b"}
        assert "Traceback" not in a.log() and "Traceback" not in b.log()
    finally:
        for server in servers:
            server.stop()
        member.stop()
