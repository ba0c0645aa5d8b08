"""Three control-plane machines (network namespaces, simulated nodes): `kubelite init --cluster-init
--upload-certs` on cp1, `kubelite join --control-plane` on cp2 and cp3. Shared by tests/e2e/test_ha_controlplane.py
and bench/failover.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time

import multinode
from multinode import Machines, kubectl

HOSTS = {"cp1": ["192.168.79.11/24"], "cp2": ["192.168.79.12/24"], "cp3": ["192.168.79.13/24"]}
# what the tests do not need, so three control planes start in seconds
LEAN = ["--disable", "dns,servicelb,ingress,dashboard"]
CONTROL_PLANE_JOIN = r"^kubelite join \S+ .*--control-plane --certificate-key \S+$"
JOINED = "a new control plane instance was created"


class HACluster:
    def __init__(self, machines: Machines, count: int = 3) -> None:
        self.m = machines
        names = list(HOSTS)[:count]
        first = machines[names[0]]
        self.init = first.kubelite("init", "--cluster-init", "--upload-certs", "--data-dir", first.data_dir,
                                   "--apiserver-advertise-address", first.address, "--node-name", names[0],
                                   "--node-runtime", "simulated", *LEAN, wait=CONTROL_PLANE_JOIN, timeout=90)
        line = re.findall(CONTROL_PLANE_JOIN, self.init.output(), re.MULTILINE)[-1]
        self.join_args = shlex.split(line)[2:]
        self.procs = {names[0]: self.init}
        for name in names[1:]:
            self.join(name)

    def join(self, name: str):
        machine = self.m[name]
        proc = machine.kubelite("join", *self.join_args, "--data-dir", machine.data_dir,
                                "--apiserver-advertise-address", machine.address, "--node-name", name,
                                "--runtime", "simulated", "-v", wait=JOINED, timeout=120)
        self.procs[name] = proc
        return proc

    def kubeconfig(self, name: str) -> str:
        return os.path.join(self.m[name].data_dir, "admin.kubeconfig")

    def kubectl(self, name: str, *args: str, check: bool = True, timeout: float = 30,
                kubeconfig: str | None = None) -> subprocess.CompletedProcess:
        return kubectl(self.m[name], *args, kubeconfig=kubeconfig or self.kubeconfig(name), check=check,
                       timeout=timeout)

    def etcdctl(self, name: str, *args: str, endpoints: str = "https://127.0.0.1:2379",
                check: bool = True, timeout: float = 15) -> subprocess.CompletedProcess:
        pki = os.path.join(self.m[name].data_dir, "pki")
        return self.m[name].run(["etcdctl", "--endpoints", endpoints, "--cacert", f"{pki}/etcd/ca.crt",
                                 "--cert", f"{pki}/etcd/healthcheck-client.crt",
                                 "--key", f"{pki}/etcd/healthcheck-client.key", "--dial-timeout", "2s",
                                 "--command-timeout", "5s", *args], check=check, timeout=timeout,
                                env={"ETCDCTL_API": "3"})

    def etcd_pid(self, name: str) -> int:
        with open(os.path.join(self.m[name].data_dir, "etcd", "etcd.pid")) as f:
            return int(f.read())

    def endpoints(self, name: str) -> list[str]:
        r = self.kubectl(name, "get", "endpoints", "kubernetes", "-o", "json", check=False)
        if r.returncode != 0:
            return []
        return sorted(a["ip"] for s in json.loads(r.stdout).get("subsets") or [] for a in s.get("addresses") or [])

    def wait(self, condition, timeout: float = 60.0, what: str = ""):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = condition()
            except (AssertionError, OSError, ValueError, subprocess.SubprocessError) as e:
                last = e
            else:
                if last:
                    return last
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what or condition}: last {last!r}\n{self.m.logs(2500)}")


def requirements():
    import pytest

    from storage.etcd_process import SKIP_REASON, etcd_available

    return [*multinode.requirements(), pytest.mark.skipif(not etcd_available(), reason=SKIP_REASON)]
