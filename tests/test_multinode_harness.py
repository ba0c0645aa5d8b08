"""The multi-machine harness itself (tests/multinode.py): segments, routing, processes, teardown, and one
`kubelite init` + two `kubelite join` across machines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import multinode
from kubectl_output import header, rows
from multinode import TWO_SEGMENTS, Machines, kubectl, parse_join_command

pytestmark = multinode.requirements()

machines = multinode.fixture("machines")
routed = multinode.fixture("routed", TWO_SEGMENTS)


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def running(pid: int) -> bool:
    """Alive and not a zombie (a daemon's zombie waits for whoever reaps orphans here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_one_segment_hosts_reach_each_other(machines):
    assert [m.address for m in machines] == ["192.168.77.10", "192.168.77.11", "192.168.77.12"]
    for a in machines:
        for b in machines:
            if a is not b:
                assert a.ping(b.address), f"{a.name} -> {b.name}"
        assert a.ping("192.168.77.1")  # the switch's gateway address
        assert "default via 192.168.77.1" in a.run(["ip", "route"], check=True).stdout
        assert a.sysctl("net.ipv4.ip_forward") == "0"
        # nsenter --net keeps the host's mounts: the cgroup filesystem runc needs is there
        assert a.run(["test", "-d", "/sys/fs/cgroup"]).returncode == 0
    assert not machines["master"].ping("192.168.77.99", timeout=1)


def test_two_segments_route_through_the_master(routed):
    master, node01, node02 = routed["master"], routed["node01"], routed["node02"]
    assert master.addresses == ["192.168.77.10", "192.168.78.10"]
    assert master.sysctl("net.ipv4.ip_forward") == "1"
    assert node01.ping("192.168.78.12") and node02.ping("192.168.77.11")
    assert "192.168.78.0/24 via 192.168.77.10" in node01.run(["ip", "route"], check=True).stdout
    # the path really is the master: without its forwarding the segments are apart (the switch routes nothing)
    master.sysctl("net.ipv4.ip_forward", "0")
    assert not node01.ping("192.168.78.12", timeout=1)
    master.sysctl("net.ipv4.ip_forward", "1")
    assert node01.ping("192.168.78.12")


def test_http_between_machines(machines):
    server = machines["node01"].spawn([sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0",
                                       "--directory", machines["node01"].dir])
    server.wait_for(r"Serving HTTP", timeout=20)
    with open(os.path.join(machines["node01"].dir, "hello.txt"), "w") as f:
        f.write("hello from node01")
    assert machines["node02"].http_get("http://192.168.77.11:8080/hello.txt") == "hello from node01"
    with pytest.raises(OSError):
        # the root namespace does not see the machines' sockets, and machines do not see each other's loopback
        machines["node02"].http_get("http://127.0.0.1:8080/hello.txt", timeout=2)


def test_teardown_kills_processes_and_leaves_nothing():
    links_before = root_links()
    with Machines() as m:
        names = m.leftovers()
        assert sorted(names) == sorted(f"{m.prefix}-{n}" for n in ("switch", "master", "node01", "node02"))
        with open(f"{multinode.RUN_DIR}/{m.run_id}.json") as f:
            assert json.load(f)["pid"] == os.getpid()
        sleeper = m["node01"].spawn(["sleep", "1000"])
        # a daemon that left the process group (as conmon does) is still found through its namespace
        m["node02"].run(["sh", "-c", "setsid sleep 1001 </dev/null >/dev/null 2>&1 &"], check=True)
        time.sleep(0.2)
        daemons = [int(p) for p in subprocess.run(["ip", "netns", "pids", m["node02"].netns],
                                                  capture_output=True, text=True).stdout.split()]
        assert daemons and sleeper.alive
        # the veths and bridges live in the machines and the switch, never in the root namespace
        ours = {"br0", *(f"v0-{n}" for n in ("master", "node01", "node02"))}
        assert not (root_links() - links_before) & ours
        base = m.base_dir
    assert not sleeper.alive and sleeper.popen.returncode == -signal.SIGTERM
    assert all(not running(pid) for pid in daemons)
    assert m.leftovers() == [] and not any(ns.startswith(m.prefix) for ns in multinode.list_netns())
    assert not os.path.exists(f"{multinode.RUN_DIR}/{m.run_id}.json") and not os.path.exists(base)


def test_teardown_runs_when_the_test_body_fails():
    with pytest.raises(ZeroDivisionError), Machines() as m:
        m["master"].spawn(["sleep", "1000"])
        raise ZeroDivisionError
    assert m.leftovers() == [] and not m.procs[0].alive


def test_cleanup_stale_removes_dead_runs_only(machines):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{multinode.PREFIX}-abcdef-master"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    with open(f"{multinode.RUN_DIR}/abcdef.json", "w") as f:
        json.dump({"pid": dead.pid, "start_time": "1", "base_dir": None}, f)
    try:
        assert stale in multinode.cleanup_stale()
        assert stale not in multinode.list_netns() and not os.path.exists(f"{multinode.RUN_DIR}/abcdef.json")
        assert len(machines.leftovers()) == 4  # a live run is left alone
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


def test_parse_join_command():
    text = "noise\n\nkubelite join 192.168.77.10:6443 --token abcdef.0123456789abcdef " \
           "--discovery-token-ca-cert-hash sha256:00ff\n\n"
    assert parse_join_command(text) == ["192.168.77.10:6443", "--token", "abcdef.0123456789abcdef",
                                        "--discovery-token-ca-cert-hash", "sha256:00ff"]


def test_init_and_two_joins_make_three_ready_nodes(machines):
    """The tutorial's A.2 on simulated nodes: init on the master, the printed join on node01 and node02."""
    init_and_join(machines)


def test_init_and_joins_across_two_segments(routed):
    """node02 on the other segment joins through the master's routing (the vxlan tests' layout)."""
    init_and_join(routed)


def init_and_join(machines: Machines) -> None:
    master = machines["master"]
    began = time.monotonic()
    init = master.kubelite("init", "--apiserver-advertise-address", master.address, "--data-dir",
                           master.data_dir, "--node-runtime", "simulated", "--node-name", "master",
                           wait=multinode.JOIN_LINE, timeout=90)
    join = parse_join_command(init.output())
    assert join[0].startswith(f"{master.address}:"), join
    joined = time.monotonic()
    for name in ("node01", "node02"):
        node = machines[name]
        node.kubelite("join", *join, "--runtime", "simulated", "--node-name", name, "--data-dir", node.data_dir,
                      wait="This node has joined the cluster", timeout=60)
    admin = os.path.join(master.data_dir, "admin.kubeconfig")

    def ready() -> list[dict]:
        r = kubectl(master, "get", "nodes", kubeconfig=admin)
        if r.returncode != 0 or not r.stdout.strip():
            return []
        nodes = [dict(zip(header(r.stdout), row, strict=False)) for row in rows(r.stdout)]
        return nodes if len(nodes) == 3 and all(n["STATUS"] == "Ready" for n in nodes) else []

    deadline = time.monotonic() + 60
    while not (nodes := ready()) and time.monotonic() < deadline:
        time.sleep(0.5)
    now = time.monotonic()
    wide = kubectl(master, "get", "nodes", "-o", "wide", kubeconfig=admin).stdout
    with open(admin) as f:
        server = [line.split()[-1] for line in f if "server:" in line]
    # InternalIP and ROLES are being fixed elsewhere (issue 11, item 4): shown, not asserted yet
    print(f"3 nodes Ready {now - began:.1f}s after init began, {now - joined:.1f}s after the joins began; "
          f"admin.kubeconfig server {server}:\n{wide}")
    assert nodes, wide
    assert sorted(n["NAME"] for n in nodes) == ["master", "node01", "node02"]
    # SIGTERM stops each kubelite whole (what the teardown does with whatever a test leaves running)
    for proc in reversed(machines.procs):
        began = time.monotonic()
        rc = proc.stop()
        print(f"{proc.argv[1]} stopped with {rc} in {time.monotonic() - began:.1f}s")
        assert not proc.alive
