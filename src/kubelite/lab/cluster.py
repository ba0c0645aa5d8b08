"""The lab's own cluster: a `kubelite up` subprocess in a data dir of its own, started in a scenario's weak
configuration, restarted with other flags when a defense changes them, stopped and wiped by `lab reset`.

Everything the lab opens listens on 127.0.0.1 (API server, kubelet API, read-only port): a weakened cluster
is never reachable from the network.  The API server always writes an audit log (the evidence)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

NODE_NAME = "lab-node"
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-controller-manager", "system:kube-scheduler", "kubelite:component-informers",
          "kubelite:network-addons", "kubelite:simulated-nodes", "system:node:lab-node", "system:apiserver",
          "kubelite:dashboard-installer"]
- level: None
  resources: [{group: "coordination.k8s.io", resources: ["leases"]}]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi*", "/api", "/apis*"]
- level: Metadata
  resources: [{group: "", resources: ["secrets", "configmaps"]}, {group: "authentication.k8s.io",
             resources: ["tokenreviews"]}]
- level: Request
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: Metadata
"""


def default_lab_dir() -> str:
    env = os.environ.get("KUBELITE_LAB_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/kubelite-lab"
    return os.path.join(os.path.expanduser("~"), ".kubelite-lab")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_containers_possible() -> tuple[bool, str]:
    from ..doctor import real_node_possible

    ok, why = real_node_possible()
    return ok, why if isinstance(why, str) else "; ".join(map(str, why or []))


@dataclass
class LabState:
    scenario: str = ""
    mode: str = ""  # weak | defended | default
    port: int = 0
    kubelet_port: int = 0
    read_only_port: int = 0
    pid: int = 0
    runtime: str = "simulated"
    flags: list[str] = field(default_factory=list)
    attack_started: str = ""  # RFC 3339 time of the last attack (evidence looks from there)
    addons: list[str] = field(default_factory=list)


class LabCluster:
    def __init__(self, data_dir: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(data_dir))
        self.data_dir = os.path.join(self.root, "cluster")
        self.lab_dir = os.path.join(self.root, "lab")
        self.state = self._load()

    # -- state ------------------------------------------------------------------------------------------

    @property
    def state_path(self) -> str:
        return os.path.join(self.lab_dir, "state.json")

    def _load(self) -> LabState:
        try:
            with open(self.state_path) as f:
                return LabState(**json.load(f))
        except (OSError, ValueError, TypeError):
            return LabState()

    def save(self) -> None:
        os.makedirs(self.lab_dir, mode=0o700, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self.state), f, indent=1)
        os.replace(tmp, self.state_path)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.state.port}"

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.data_dir, "admin.kubeconfig")

    @property
    def audit_log(self) -> str:
        return os.path.join(self.lab_dir, "audit.log")

    @property
    def log_path(self) -> str:
        return os.path.join(self.lab_dir, "cluster.log")

    def running(self) -> bool:
        pid = self.state.pid
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:  # a recycled pid is not our cluster
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return self.data_dir.encode() in f.read()
        except OSError:
            return False

    # -- processes --------------------------------------------------------------------------------------

    def command(self, flags: list[str]) -> list[str]:
        s = self.state
        policy = os.path.join(self.lab_dir, "audit-policy.yaml")
        disabled = [a for a in ("dns", "servicelb", "ingress", "dashboard") if a not in s.addons]
        cmd = [sys.executable, "-m", "kubelite.cli", "up", "--data-dir", self.data_dir, "--port", str(s.port),
               "--bind-address", "127.0.0.1", "--node-name", NODE_NAME, "--node-runtime", s.runtime,
               "--audit-policy-file", policy, "--audit-log-path", self.audit_log,
               "--cluster-dns-port", "0", "--ingress-http-port", "0", "--ingress-https-port", "0",
               "--dashboard-port", "0"]
        if disabled:
            cmd += ["--disable", ",".join(disabled)]
        if s.runtime == "runc":
            cmd += ["--node-ip", "127.0.0.1", "--kubelet-port", str(s.kubelet_port),
                    "--kubelet-arg=address=127.0.0.1", "--cleanup-on-exit",
                    # one node needs no overlay; the built-in bridge keeps pods at MTU 1500 (not loopback's)
                    "--flannel-backend", "none", "--cni-conf-dir", os.path.join(self.lab_dir, "cni")]
        return cmd + list(flags)

    def start(self, flags: list[str], *, timeout: float = 90.0) -> None:
        """Start `kubelite up` with these scenario flags (stopping a running one first)."""
        self.stop()
        s = self.state
        os.makedirs(self.lab_dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.lab_dir, "audit-policy.yaml"), "w") as f:
            f.write(AUDIT_POLICY)
        s.port = s.port or free_port()
        s.kubelet_port = s.kubelet_port or free_port()
        if s.runtime == "runc":
            from .image import ensure_image

            ensure_image(os.path.join(self.data_dir, "agent"))
        s.flags = list(flags)
        log = open(self.log_path, "ab")
        try:
            proc = subprocess.Popen(self.command(flags), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            log.close()
        s.pid = proc.pid
        self.save()
        self._wait_ready(proc, timeout)

    def _wait_ready(self, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"kubelite up exited with {proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200 and os.path.exists(self.kubeconfig):
                        break
            except urllib.error.HTTPError as e:  # anonymous auth off: 401 means it serves
                if e.code in (401, 403) and os.path.exists(self.kubeconfig):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"kubelite up did not become ready in {timeout:.0f}s:\n{self.log_tail()}")
        self.wait_node_ready(max(5.0, deadline - time.monotonic()))
        if self.state.runtime == "runc":
            # after a restart the Node still says Ready from before: wait for the kubelet itself to answer
            self.wait_kubelet(max(5.0, deadline - time.monotonic()))

    def wait_kubelet(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.state.kubelet_port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the kubelet did not listen on 127.0.0.1:{self.state.kubelet_port} in {timeout:.0f}s:\n"
                           f"{self.log_tail()}")

    def wait_node_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.kubectl("get", "node", NODE_NAME, "-o",
                             "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
            if r.returncode == 0 and r.stdout.strip() == "True":
                return
            time.sleep(0.3)
        raise RuntimeError(f"node {NODE_NAME} did not become Ready in {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        if not self.running():
            self.state.pid = 0
            return
        pid = self.state.pid
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running():
            _reap(pid)
            time.sleep(0.1)
        if self.running():
            os.killpg(pid, signal.SIGKILL)
            time.sleep(0.5)
        _reap(pid)
        self.state.pid = 0
        self.save()

    def wipe(self) -> None:
        """Stop the cluster and remove its data dir: the next start has a new CA, keys and tokens."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.state = LabState()

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # -- kubectl ----------------------------------------------------------------------------------------

    def kubectl(self, *args: str, kubeconfig: str | None = None, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [kubectl_binary(), "--kubeconfig", kubeconfig or self.kubeconfig, "--cache-dir",
               os.path.join(self.lab_dir, "kube-cache"), *args]
        try:
            return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(cmd, 124, _str(e.stdout), _str(e.stderr) + f"\n(timed out after "
                                                                                        f"{timeout:.0f}s)")


def _str(v: bytes | str | None) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else (v or "")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def kubectl_binary() -> str:
    return os.environ.get("KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"
