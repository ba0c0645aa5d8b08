"""Nodes sharing one kernel never touch each other's host paths: pod network namespaces carry the node's tag,
orphan cleanup looks only at its own node's netns and cgroups, and state written with the earlier netns names
is still torn down (root only: real network namespaces and cgroups)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from kubelite.kubelet.network import PodNetwork, netns_name, netns_path, node_tag
from kubelite.kubelet.runtime.runc import child_cgroups, find_runtime

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and cgroups need root")


def test_names_carry_the_node():
    uid = "0c474eba-a20b-45d0-9f3e-6a1c2b3d4e5f"
    assert netns_name(uid, "node01", "/d1") == f"kl-{node_tag('node01', '/d1')}-0c474ebaa20b45d0"
    assert netns_name(uid, "node01", "/d1") != netns_name(uid, "node02", "/d1")
    # two clusters on one host may both have a node01: their data dirs tell them apart
    assert netns_name(uid, "node01", "/d1") != netns_name(uid, "node01", "/d2")
    assert netns_name(uid) == "kl-0c474ebaa20b45d0"  # the earlier form
    assert len(node_tag("a" * 253)) == 8 and node_tag("node01", "/d1") == node_tag("node01", "/d1")
    assert len(netns_name(uid, "x" * 253, "/d" * 100)) < 64
    net = PodNetwork("/var/lib/kubelite/agent", node="node01")
    assert net.netns_name(uid) == netns_name(uid, "node01", "/var/lib/kubelite/agent")


def _add(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)


def _gone(name: str) -> bool:
    return not os.path.lexists(os.path.join("/run/netns", name))


@needs_root
async def test_orphan_netns_cleanup_keeps_to_its_own_node(tmp_path):
    a = PodNetwork(str(tmp_path / "a"), node=f"scoped-a-{uuid.uuid4().hex[:6]}")
    b = PodNetwork(str(tmp_path / "b"), node=f"scoped-b-{uuid.uuid4().hex[:6]}")
    mine_known, mine_orphan, theirs, legacy = (str(uuid.uuid4()) for _ in range(4))
    same_name = PodNetwork(str(tmp_path / "c"), node=a.node)  # a node01 of another cluster
    names = [a.netns_name(mine_known), a.netns_name(mine_orphan), b.netns_name(theirs), netns_name(legacy),
             same_name.netns_name(theirs)]
    try:
        for n in names:
            _add(n)
        assert set(a.own_netns()) == {names[0], names[1]}
        assert await a.remove_orphan_netns({mine_known}) == [names[1]]
        assert _gone(names[1])
        # another node's, a legacy one, one of a node with the same name in another data dir
        assert not any(_gone(n) for n in (names[0], names[2], names[3], names[4]))
        assert set(b.own_netns()) == {names[2]} and set(same_name.own_netns()) == {names[4]}
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "delete", n], capture_output=True)


@needs_root
async def test_teardown_finds_the_earlier_name_through_the_result_cache(tmp_path):
    net = PodNetwork(str(tmp_path), node="scoped-legacy")
    uid = str(uuid.uuid4())
    os.makedirs(os.path.join(net.state_dir, "results"))
    # a result cached before the node tag: no "netns" recorded
    with open(os.path.join(net.state_dir, "results", uid + ".json"), "w") as f:
        json.dump({"cidr": "10.251.9.0/24", "ip": "10.251.9.7", "portMappings": [], "result": None}, f)
    _add(netns_name(uid))
    try:
        pod = {"metadata": {"uid": uid, "name": "p", "namespace": "default"}, "spec": {"containers": []}}
        assert await net.setup(pod, "10.251.9.0/24") == (netns_path(uid), "10.251.9.7")  # re-adopted as it was
        await net.teardown(uid)
        assert _gone(netns_name(uid)) and net.known_pods() == []
    finally:
        subprocess.run(["ip", "netns", "delete", netns_name(uid)], capture_output=True)


@needs_root
@pytest.mark.skipif(find_runtime("runc") is None, reason="needs runc")
async def test_runtime_cleanup_removes_only_its_nodes_orphans(tmp_path):
    from kubelite.kubelet.runtime.runc_runtime import RuncRuntime

    hierarchy = "/sys/fs/cgroup/pids"
    if not os.path.isdir(hierarchy):
        pytest.skip("no v1 pids hierarchy here")
    tag = uuid.uuid4().hex[:6]
    # no API, images or pods needed: cleanup only looks at the host
    x, y = (RuncRuntime(None, data_dir=str(tmp_path / n), node_name=n, node_ip="127.0.0.1",  # type: ignore[arg-type]
                        puller=None, rootfs=None)  # type: ignore[arg-type]
            for n in (f"scoped-x-{tag}", f"scoped-y-{tag}"))
    orphan, other = str(uuid.uuid4()), str(uuid.uuid4())
    made = [f"{hierarchy}{x.cgroup_parent}/pod{orphan}", f"{hierarchy}{y.cgroup_parent}/pod{other}"]
    try:
        for d in made:
            os.makedirs(d)
        _add(x.network.netns_name(orphan))
        _add(y.network.netns_name(other))
        assert child_cgroups(x.cgroup_parent) == {f"pod{orphan}"}
        await x.cleanup_orphans()
        assert not os.path.exists(made[0]) and _gone(x.network.netns_name(orphan))
        assert os.path.isdir(made[1]) and not _gone(y.network.netns_name(other))  # the other node's stay
    finally:
        for d in made:
            for p in (d, os.path.dirname(d), os.path.dirname(os.path.dirname(d))):
                try:
                    os.rmdir(p)
                except OSError:
                    pass
        for n in (x.network.netns_name(orphan), y.network.netns_name(other)):
            subprocess.run(["ip", "netns", "delete", n], capture_output=True)
