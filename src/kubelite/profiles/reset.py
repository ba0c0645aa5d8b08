"""`kubelite reset`: take this machine out of the cluster and put it back as it was, as `kubeadm reset` (and more:
kubeadm leaves iptables rules and CNI state for the user; kubelite removes what it made).

In order: stop the kubelite that runs here (the node lock names it), delete this machine's Node while an
administrator's credentials are at hand, stop and remove every container of this node, its pod network
namespaces, CNI state, cgroups and volume mounts, the bridge and portmap's chains, the pod network's device,
routes and rules, the proxy's KUBE-* chains, then the data dir itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field


@dataclass
class ResetReport:
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def did(self, line: str) -> None:
        self.done.append(line)
        print(f"[reset] {line}", flush=True)

    def warn(self, line: str) -> None:
        self.warnings.append(line)
        print(f"[reset] WARNING: {line}", file=sys.stderr, flush=True)


def _stop_holder(report: ResetReport, timeout: float) -> None:
    from . import lock

    pid = lock.holder_pid()
    if pid is None:
        return
    if pid <= 0 or pid == os.getpid():
        report.warn("the node lock is held by a process that cannot be identified; stop it yourself")
        return
    report.did(f"Stopping the kubelite running here (pid {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and lock.holder_pid() is not None:
        time.sleep(0.1)
    if lock.holder_pid() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def node_name_of(data_dir: str) -> str:
    """The node this data dir ran: the CN of its kubelet credentials (system:node:<name>), else ""."""
    import base64

    from ..client import yamlfiles
    from ..pki import certs
    from ..pki.csr import subject

    for name in ("kubelet.kubeconfig", os.path.join("pki", "kubelet.kubeconfig")):
        path = os.path.join(data_dir, name)
        with contextlib.suppress(OSError, KeyError, IndexError, ValueError, TypeError):
            cfg = yamlfiles.load(path)
            pem = base64.b64decode(cfg["users"][0]["user"]["client-certificate-data"])
            cn, _ = subject(certs.load_cert(pem))
            if cn.startswith("system:node:"):
                return cn.removeprefix("system:node:")
    return ""


async def _delete_node(data_dir: str, node: str, report: ResetReport) -> None:
    from ..api.resources import Registry
    from ..client import ApiClient, ClientError

    admin = os.path.join(data_dir, "admin.kubeconfig")
    if not node:
        return
    if not os.path.exists(admin):
        report.warn(f"no administrator credentials here: delete the Node from the control plane with "
                    f"`kubectl delete node {node}`")
        return
    client = ApiClient.from_kubeconfig(admin)
    try:
        await asyncio.wait_for(client.delete(Registry().get("", "v1", "nodes"), None, node), 5.0)
        report.did(f"Deleted Node {node}")
    except ClientError as e:
        if not e.is_not_found:
            report.warn(f"could not delete Node {node}: {e.message}")
    except (OSError, TimeoutError):
        pass  # the API server ran here and is stopped: the Node goes with the data dir
    finally:
        await client.close()


async def reset(data_dir: str, *, node_name: str = "", stop_timeout: float = 30.0) -> ResetReport:
    """Everything but the confirmation: see the module docstring."""
    from ..flannel import FlannelConfig
    from ..flannel import cleanup as flannel_cleanup
    from ..kubelet.runtime.node_agent import reset_node
    from ..proxy import cleanup_rules
    from . import lock

    report = ResetReport()
    data_dir = os.path.abspath(data_dir)
    node = node_name or node_name_of(data_dir)
    # stopped first, or its kubelet would register the Node again; if the API server ran here too, the Node goes
    # with the data dir
    await _leave_etcd(data_dir, report)  # while this machine's member may still answer
    await asyncio.get_running_loop().run_in_executor(None, _stop_holder, report, stop_timeout)
    _stop_etcd(data_dir, report)
    await _delete_node(data_dir, node, report)
    agent_dir = os.path.join(data_dir, "agent")
    if os.path.isdir(agent_dir) or node:
        removed = await reset_node(agent_dir, node)
        for line in removed:
            report.did(line)
    removed_flannel = await flannel_cleanup(FlannelConfig(node_name=node or "-"))
    if removed_flannel:
        report.did(f"Removed the pod network's {', '.join(removed_flannel)}")
    chains = await cleanup_rules("KUBE-")
    if chains:
        report.did(f"Removed {len(chains)} KUBE-* iptables chains")
    if os.path.isdir(data_dir):
        shutil.rmtree(data_dir, ignore_errors=True)
        report.did(f"Deleted contents of {data_dir}")
    with contextlib.suppress(OSError):
        os.unlink(lock.lock_path())
    return report


async def _leave_etcd(data_dir: str, report: ResetReport) -> None:
    """`init --cluster-init` / `join --control-plane` ran an etcd member here: take it out of its cluster."""
    from ..etcd.member import EtcdError, leave_cluster

    try:
        done = await leave_cluster(data_dir)
    except EtcdError as e:
        report.warn(f"could not remove this machine's etcd member from its cluster ({e}); remove it from another "
                    f"control-plane machine with `etcdctl member remove`")
        return
    if done:
        report.did(done)


def _stop_etcd(data_dir: str, report: ResetReport) -> None:
    from ..etcd.member import running_pid, stop_pid

    pid = running_pid(data_dir)
    if pid is not None:
        stop_pid(pid)
        report.did(f"Stopped the etcd member (pid {pid})")


def confirm(data_dir: str) -> bool:
    print(f"[reset] WARNING: Changes made to this host by 'kubelite up', 'init', 'join' or 'agent' will be reverted:\n"
          f"[reset] its containers, pod networks, iptables rules and the data dir {data_dir} are removed.")
    try:
        answer = input("[reset] Are you sure you want to proceed? [y/N]: ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")
