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
        member.start()
        cluster.kubectl("create", "configmap", "after-outage", check=True)
    finally:
        cluster.stop()
        member.stop()
