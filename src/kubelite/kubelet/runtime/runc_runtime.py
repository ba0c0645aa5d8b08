"""The real runtime: pods as runc containers in a CNI network namespace, with volumes, probes and hooks.

`RuncRuntime` implements `runtime.base.Runtime`; each pod gets a `RuncPod` whose async `step()` does one
round of upstream's SyncPod: collect exits, run due probes, ask `lifecycle.compute_pod_actions` what to do,
then stop and start containers.  The agent (agent.py) turns the resulting `PodRuntime` into the API status.

Node data dir layout:
    runc/                       runc --root
    containers/<cid>/           OCI bundle (config.json, conmon's pid file, attach socket dir)
    exits/<cid>                 exit code written by conmon
    logs/<ns>_<pod>_<uid>/<container>/<restart>.log     CRI-format logs (upstream's /var/log/pods layout)
    pods/<uid>/                 volumes/, etc-hosts, resolv.conf, hostname, state.json (for re-adoption)
    images/                     the image store (kubelet.images)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ...api.resources import Registry
from ...client import ApiClient, ClientError
from .. import lifecycle as lc
from ..images import ImagePuller, ImagePullError, RootfsManager, auths_from_secrets
from ..logrotation import LogRotatePolicy, needs_rotation, reopen_conmon_log, rotate_log
from ..network import NetworkError, PodNetwork
from ..podstatus import ContainerState, PodRuntime, is_restartable_init
from ..probes import ContainerProbes, liveness_kill_message, probe_event_message, run_probe
from ..service_env import service_env
from ..simulated import SimEvent
from ..volumes import VolumeError, VolumeManager
from . import oci
from .cgroupfs import CgroupReport, ensure_cgroups
from .runc import Runc, RuntimeError_, child_cgroups, oom_killed, read_exit_code, remove_cgroup

log = logging.getLogger("kubelite.kubelet.runc")

Obj = dict[str, Any]
_REG = Registry()
CONFIGMAPS = _REG.get("", "v1", "configmaps")
SECRETS = _REG.get("", "v1", "secrets")
SERVICES = _REG.get("", "v1", "services")
SERVICE_LIST_TTL = 2.0  # how stale the Services behind containers' service env vars may be
CONTAINER_ID_PREFIX = "runc://"
DEFAULT_GRACE = 30
# what containerd reports for a container whose task could not be created (runc create failed)
START_ERROR_EXIT_CODE = 128
START_ERROR_REASON = "StartError"


@dataclass
class Instance:
    """One started container instance (persisted in pods/<uid>/state.json for re-adoption)."""

    name: str
    cid: str
    init: bool
    restart: int
    log_path: str
    cgroups_path: str
    started_at: float
    image: str
    image_id: str
    kill_deadline: float | None = None  # SIGKILL after this
    exited: bool = False


@dataclass
class DNSConfig:
    nameservers: list[str] = field(default_factory=lambda: ["10.96.0.10"])
    cluster_domain: str = "cluster.local"
    host_resolv: str = "/etc/resolv.conf"


class RuncRuntime:
    adopts_from_status = False

    def __init__(self, client: ApiClient, *, data_dir: str, node_name: str, node_ip: str, puller: ImagePuller,
                 rootfs: RootfsManager, runc: Runc | None = None, network: PodNetwork | None = None,
                 volumes: VolumeManager | None = None, dns: DNSConfig | None = None, ca_pem: bytes = b"",
                 log_policy: LogRotatePolicy | None = None) -> None:
        self.client = client
        self.data_dir = data_dir
        self.node_name = node_name
        self.node_ip = node_ip
        self.puller = puller
        self.rootfs = rootfs
        self.runc = runc or Runc(os.path.join(data_dir, "runc"))
        self.network = network or PodNetwork(data_dir, node=node_name)
        if not self.network.node:
            self.network.node = node_name  # its netns names carry the node's tag
        self.volumes = volumes or VolumeManager(client, data_dir, ca_pem=ca_pem, node_ip=node_ip)
        self.dns = dns or DNSConfig()
        self.log_policy = log_policy or LogRotatePolicy.parse()
        self.pods: dict[str, RuncPod] = {}  # uid -> pod
        self.notify: Callable[[str], None] = lambda key: None
        self.pod_cidr: Callable[[str], str | None] = lambda node: "10.244.0.0/24"
        self.needs_node_cidr = True  # the agent hands us the node's spec.podCIDR, or None until it is set
        self._tasks: set[asyncio.Task] = set()
        self._services: tuple[float, list[Obj]] | None = None
        for d in ("containers", "exits", "logs", "pods"):
            os.makedirs(os.path.join(data_dir, d), exist_ok=True)
        self.cgroups: CgroupReport = ensure_cgroups()
        if self.cgroups.mounted:
            log.info("mounted the host's cgroup filesystems in this mount namespace (%s): %s",
                     ", ".join(self.cgroups.mounted), self.cgroups.found)
        elif not self.cgroups.ok:
            log.error("containers cannot be created here: %s", self.cgroups.reason)

    # -- Runtime interface ----------------------------------------------------------------------------

    def attach(self, notify: Callable[[str], None], pod_cidr: Callable[[str], str]) -> None:
        self.notify = notify
        self.pod_cidr = pod_cidr

    def new_pod(self, pod: Obj, now: float) -> RuncPod:
        uid = pod["metadata"]["uid"]
        p = self.pods.get(uid)
        if p is None:
            p = self.pods[uid] = RuncPod(self, pod, now)
        return p

    async def release(self, handle: RuncPod) -> None:
        self.pods.pop(handle.uid, None)
        await handle.teardown()

    async def service_env(self, pod: Obj) -> dict[str, str]:
        """The service env vars of the pod's containers (service_env.py), from a briefly cached list."""
        now = time.monotonic()
        if self._services is None or now - self._services[0] > SERVICE_LIST_TTL:
            try:
                items = (await self.client.list(SERVICES))["items"]
            except ClientError as e:
                log.warning("cannot list services for the pods' environment: %s", e)
                items = self._services[1] if self._services else []
            self._services = (now, items)
        return service_env(self._services[1], pod["metadata"].get("namespace", "default"),
                           (pod.get("spec") or {}).get("enableServiceLinks", True) is not False)

    def spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- lookups for the kubelet server ----------------------------------------------------------------

    def find(self, namespace: str, name: str, uid: str | None = None) -> RuncPod | None:
        for p in self.pods.values():
            if p.namespace == namespace and p.name == name and (uid is None or p.uid == uid):
                return p
        return None

    async def rotate_logs(self) -> list[str]:
        """One round of the container log manager: rotate the logs of running containers grown past the
        limit (logrotation.py has the rule); returns the rotated files."""
        done = []
        for p in list(self.pods.values()):
            for inst in list(p.instances.values()):
                if inst.exited or not needs_rotation(inst.log_path, self.log_policy):
                    continue
                bundle = os.path.join(self.data_dir, "containers", inst.cid)
                try:
                    done.append(await rotate_log(inst.log_path, self.log_policy,
                                                 lambda b=bundle, lp=inst.log_path: reopen_conmon_log(b, lp)))
                except OSError as e:
                    log.warning("failed to rotate log %s: %s", inst.log_path, e)
        return done

    async def rotate_logs_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.rotate_logs()
            except Exception:
                log.exception("container log rotation failed")

    @property
    def cgroup_parent(self) -> str:
        """This node's cgroups: /kubelite/<node>/pod<uid>/<container> (nodes sharing a kernel never meet)."""
        return f"/kubelite/{self.node_name}"

    async def cleanup_orphans(self) -> None:
        """Remove runc containers, netns, cgroups and pod dirs of pods this node no longer knows (after a
        restart).  Only this node's: its runc root, its data dir, netns names with its tag, its cgroup parent."""
        known = set(self.pods)
        for c in await self.runc.list():
            uid = (c.get("annotations") or {}).get("io.kubernetes.pod.uid", "")
            if uid and uid not in known:
                await self.runc.kill(c["id"], signal.SIGKILL)
                await self.runc.delete(c["id"], force=True)
                with contextlib.suppress(Exception):
                    self.rootfs.remove(c["id"])
        for uid in self.network.known_pods():
            if uid not in known:
                await self.network.teardown(uid)
        # pods may have arrived while we waited: each step looks at the pods known now
        for name in await self.network.remove_orphan_netns(set(self.pods)):
            log.info("removed orphaned pod network namespace %s", name)
        for child in child_cgroups(self.cgroup_parent):
            if child.startswith("pod") and child[3:] not in self.pods:
                remove_cgroup(f"{self.cgroup_parent}/{child}")
        with contextlib.suppress(OSError):
            for uid in os.listdir(os.path.join(self.data_dir, "pods")):
                if uid not in known:
                    await self.volumes.teardown(uid)
        with contextlib.suppress(OSError):
            for entry in os.listdir(os.path.join(self.data_dir, "logs")):
                if entry.rsplit("_", 1)[-1] not in known:
                    shutil.rmtree(os.path.join(self.data_dir, "logs", entry), ignore_errors=True)

    async def shutdown(self, *, stop_containers: bool) -> None:
        for t in list(self._tasks):
            t.cancel()
        if stop_containers:
            for p in list(self.pods.values()):
                await p.teardown()
            self.pods.clear()
            remove_cgroup(self.cgroup_parent)
            remove_cgroup("/kubelite")  # only if no other node of this host uses it (busy dirs stay)


def _cid(uid: str, name: str, restart: int) -> str:
    return hashlib.sha256(f"{uid}/{name}/{restart}/{time.time_ns()}".encode()).hexdigest()


class RuncPod:
    def __init__(self, runtime: RuncRuntime, pod: Obj, now: float) -> None:
        meta = pod["metadata"]
        self.r = runtime
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.namespace: str = meta.get("namespace", "default")
        self.key = f"{self.namespace}/{self.name}"
        self.node_name: str = (pod.get("spec") or {}).get("nodeName") or ""
        self.rt = PodRuntime(start_time=now)
        self.ip: str | None = None
        self.terminal = False
        self.netns: str | None = None
        self.volume_paths: dict[str, str] = {}
        self.instances: dict[str, Instance] = {}  # container name -> latest instance
        self.previous: dict[str, Instance] = {}  # container name -> the one before (for logs --previous)
        self.probes: dict[str, ContainerProbes] = {}
        self.conmons: dict[str, asyncio.subprocess.Process] = {}  # cid -> our conmon child
        self.terminate_started: float | None = None
        self.terminated = False
        self.torn_down = False
        self.network_wait_reported = False
        self.start_errors: set[str] = set()  # containers whose latest attempt failed in runc create (StartError)
        self.spec: Obj = pod
        self.lock = asyncio.Lock()
        self.next_refresh = now + 10.0
        self._adopt()

    # -- persistence (agent restarts) --------------------------------------------------------------------

    @property
    def pod_dir(self) -> str:
        return os.path.join(self.r.data_dir, "pods", self.uid)

    def _save(self) -> None:
        os.makedirs(self.pod_dir, exist_ok=True)
        state = {"ip": self.ip, "netns": self.netns, "start": self.rt.start_time, "volumes": self.volume_paths,
                 "instances": {n: asdict(i) for n, i in self.instances.items()},
                 "previous": {n: asdict(i) for n, i in self.previous.items()},
                 "exits": {n: {"exit": c.exit_code, "reason": c.reason, "finished": c.finished_at}
                           for n, c in list(self.rt.containers.items()) + list(self.rt.init_containers.items())
                           if c.state == "exited"},
                 # failed attempts, so that a restarted agent goes on retrying them (with a fresh back-off)
                 "start_errors": {n: {"init": n in self.rt.init_containers, "status": asdict(self._table(n)[n])}
                                  for n in self.start_errors if n in self._table(n)},
                 "failed_creates": dict(self.rt.failed_creates)}
        tmp = os.path.join(self.pod_dir, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(self.pod_dir, "state.json"))

    def _adopt(self) -> None:
        """Pick up the containers of this pod started before the agent restarted."""
        try:
            with open(os.path.join(self.pod_dir, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            return
        self.ip, self.netns = state.get("ip"), state.get("netns")
        self.rt.start_time = state.get("start") or self.rt.start_time
        self.rt.sandbox_ready = bool(self.ip or self.netns is None)
        self.rt.pod_ips = [self.ip] if self.ip else []
        self.volume_paths = dict(state.get("volumes") or {})
        self.previous = {n: Instance(**i) for n, i in (state.get("previous") or {}).items()}
        exits = state.get("exits") or {}
        specs = {c["name"]: c for c in self._all_specs()}
        for n, d in (state.get("instances") or {}).items():
            inst = Instance(**d)
            self.instances[n] = inst
            cs = ContainerState(name=n, state="running", container_id=CONTAINER_ID_PREFIX + inst.cid,
                                image=inst.image, image_id=inst.image_id, restart_count=inst.restart,
                                started_at=inst.started_at, started=True, ready=True)
            code = read_exit_code(self._exit_dir, inst.cid)
            if inst.exited or code is not None:
                cs.state = "exited"
                e = exits.get(n) or {}
                cs.exit_code = code if code is not None else e.get("exit", 0)
                cs.reason = e.get("reason") or ("Completed" if cs.exit_code == 0 else "Error")
                cs.finished_at = e.get("finished") or time.time()
                cs.ready = cs.started = False
                inst.exited = True
            elif n in specs:
                self._adopt_probes(specs[n], inst, cs)
            prev = self.previous.get(n)
            if prev is not None:
                code = read_exit_code(self._exit_dir, prev.cid)
                cs.last_terminated = {"exitCode": code or 0, "reason": "Completed" if not code else "Error",
                                      "containerID": CONTAINER_ID_PREFIX + prev.cid}
            (self.rt.init_containers if inst.init else self.rt.containers)[n] = cs
        for n, d in (state.get("start_errors") or {}).items():
            with contextlib.suppress(TypeError, KeyError):
                cs = ContainerState(**d["status"])
                inst = self.instances.get(n)
                if inst is None or cs.restart_count > inst.restart:  # the attempt after the last container
                    (self.rt.init_containers if d.get("init") else self.rt.containers)[n] = cs
                    self.start_errors.add(n)
        self.rt.failed_creates.update({n: float(t) for n, t in (state.get("failed_creates") or {}).items()})

    def _adopt_probes(self, spec: Obj, inst: Instance, cs: ContainerState) -> None:
        """Probes of a container that ran before the restart: its startup probe has passed (as upstream's
        prober treats containers started before the kubelet), readiness is probed again at once."""
        probes = ContainerProbes(spec, inst.started_at)
        if not probes.states:
            return
        now = time.time()
        if "startup" in probes.states:
            probes.states["startup"].result = True
        for state in probes.states.values():
            state.next_at = min(state.next_at, now)
        self.probes[inst.name] = probes
        cs.started = probes.started
        cs.ready = probes.ready

    @property
    def _exit_dir(self) -> str:
        return os.path.join(self.r.data_dir, "exits")

    # -- the sync ----------------------------------------------------------------------------------------

    async def step(self, pod: Obj, now: float, *, backoff: lc.BackOff, image_backoff: lc.BackOff,
                   images: set[str], alloc_ip: Callable[[], str | None]) -> tuple[list[SimEvent], float | None]:
        async with self.lock:
            self.spec = pod
            events: list[SimEvent] = []
            self._collect_exits(now)
            if pod["metadata"].get("deletionTimestamp"):
                return events, await self._terminate(pod, now, events)
            if not self.rt.sandbox_ready:
                wake = await self._sandbox(pod, events)
                if wake is not None:
                    return events, wake
            if self.terminal:
                return events, None
            if not self.volume_paths and pod["spec"].get("volumes"):
                # adopted from a state file that did not record the volumes: set them up again (idempotent)
                try:
                    self.volume_paths = await self.r.volumes.setup(pod)
                except (VolumeError, ClientError, OSError) as e:
                    events.append(SimEvent("Warning", "FailedMount", f"MountVolume.SetUp failed: {e}"))
                    return events, time.time() + 2.0
            now = time.time()
            if now >= self.next_refresh:
                self.next_refresh = now + 10.0
                self.r.spawn(self.r.volumes.refresh(pod))
            await self._probe(pod, now, events)
            specs = {c["name"]: c for c in pod["spec"].get("containers") or []}
            init_specs = {c["name"]: c for c in pod["spec"].get("initContainers") or []}
            acts = lc.compute_pod_actions(pod, self.rt, now=now, backoff=backoff)
            for name in acts.backoff_events:
                events.append(SimEvent("Warning", lc.EV_BACKOFF, lc.msg_backoff_restart(name, pod), name))
            for name in acts.kill:
                await self._stop_container(pod, name, events, reason_event=True)
            wakes: list[float] = []
            for name, init in [(n, True) for n in acts.start_init] + [(n, False) for n in acts.start]:
                spec = (init_specs if init else specs)[name]
                w = await self._start_container(pod, spec, init, events)
                if w is not None:
                    wakes.append(w)
                if init and not is_restartable_init(spec):
                    break  # the next init container waits for this one's exit
            if acts.terminal:
                self.terminal = True
            if acts.wake_after is not None:
                wakes.append(time.time() + acts.wake_after)
            for p in self.probes.values():
                d = p.next_due()
                if d is not None:
                    wakes.append(d)
            for inst in self.instances.values():
                if inst.kill_deadline is not None and not inst.exited:
                    wakes.append(inst.kill_deadline)
                if not inst.exited and inst.cid not in self.conmons:
                    wakes.append(time.time() + 1.0)  # adopted: no conmon child to wait on, poll its exit file
            wakes.append(self.next_refresh)
            self._save()
            return events, min(wakes) if wakes else None

    def termination_done(self, now: float) -> bool:
        return self.terminated

    # -- sandbox -----------------------------------------------------------------------------------------

    async def _sandbox(self, pod: Obj, events: list[SimEvent]) -> float | None:
        spec = pod["spec"]
        try:
            self.volume_paths = await self.r.volumes.setup(pod)
        except (VolumeError, ClientError, OSError) as e:
            events.append(SimEvent("Warning", "FailedMount", f"MountVolume.SetUp failed: {e}"))
            return time.time() + 2.0
        if not spec.get("hostNetwork"):
            cidr = self.r.pod_cidr(self.node_name)
            if not cidr:  # the node has no spec.podCIDR yet: the network is not ready, as upstream's kubelet says
                if not self.network_wait_reported:
                    self.network_wait_reported = True
                    events.append(SimEvent("Warning", "NetworkNotReady",
                                           "network is not ready: container runtime network not ready: "
                                           "NetworkReady=false reason:NetworkPluginNotReady message:Network "
                                           "plugin returns error: the node has no pod CIDR yet"))
                return time.time() + 1.0
            try:
                self.netns, self.ip = await self.r.network.setup(pod, cidr)
            except (NetworkError, OSError) as e:
                events.append(SimEvent("Warning", "FailedCreatePodSandBox",
                                       f"Failed to create pod sandbox: failed to setup network for sandbox: {e}"))
                return time.time() + 2.0
        else:
            self.ip = self.r.node_ip
        self._write_etc_files(pod)
        self.rt.sandbox_ready = True
        self.rt.pod_ips = [self.ip] if self.ip else []
        self._save()
        return None

    def _write_etc_files(self, pod: Obj) -> None:
        spec = pod["spec"]
        os.makedirs(self.pod_dir, exist_ok=True)
        hostname = oci.pod_hostname(pod)
        fqdn = hostname
        if spec.get("subdomain"):
            fqdn = f"{hostname}.{spec['subdomain']}.{self.namespace}.svc.{self.r.dns.cluster_domain}"
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
                 "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix",
                 "fe00::1\tip6-allnodes", "fe00::2\tip6-allrouters"]
        if self.ip and not spec.get("hostNetwork"):
            lines.append(f"{self.ip}\t{fqdn}\t{hostname}" if fqdn != hostname else f"{self.ip}\t{hostname}")
        for ha in spec.get("hostAliases") or []:
            lines.append("\n# Entries added by HostAliases.")
            lines.append(f"{ha.get('ip')}\t" + "\t".join(ha.get("hostnames") or []))
        if spec.get("hostNetwork"):
            with contextlib.suppress(OSError), open("/etc/hosts") as f:
                lines = [f.read().rstrip("\n")]
        _write(os.path.join(self.pod_dir, "etc-hosts"), "\n".join(lines) + "\n")
        _write(os.path.join(self.pod_dir, "hostname"), hostname + "\n")
        _write(os.path.join(self.pod_dir, "resolv.conf"), self._resolv(pod))

    def _resolv(self, pod: Obj) -> str:
        spec = pod["spec"]
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        host = ""
        with contextlib.suppress(OSError), open(self.r.dns.host_resolv) as f:
            host = f.read()
        if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")):
            return host
        ns_, search, options = [], [], {}
        if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
            d = self.r.dns.cluster_domain
            ns_ = list(self.r.dns.nameservers)
            search = [f"{self.namespace}.svc.{d}", f"svc.{d}", d]
            search += [w for line in host.splitlines() if line.startswith("search") for w in line.split()[1:]]
            options = {"ndots": "5"}
        cfg = spec.get("dnsConfig") or {}
        ns_ += [n for n in cfg.get("nameservers") or [] if n not in ns_]
        search += [s for s in cfg.get("searches") or [] if s not in search]
        for o in cfg.get("options") or []:
            options[o["name"]] = o.get("value")
        out = [f"search {' '.join(search[:32])}"] if search else []
        out += [f"nameserver {n}" for n in ns_[:3]]
        if options:
            out.append("options " + " ".join(k if v is None else f"{k}:{v}" for k, v in options.items()))
        return "\n".join(out) + "\n"

    # -- containers ----------------------------------------------------------------------------------------

    def _table(self, name: str) -> dict[str, ContainerState]:
        inst = self.instances.get(name)
        if inst is not None and inst.init:
            return self.rt.init_containers
        return self.rt.containers if name in self.rt.containers else self.rt.init_containers

    def _collect_exits(self, now: float) -> None:
        for name, inst in self.instances.items():
            if inst.exited:
                continue
            proc = self.conmons.get(inst.cid)
            code = read_exit_code(self._exit_dir, inst.cid)
            if code is None and proc is not None and proc.returncode is not None:
                code = read_exit_code(self._exit_dir, inst.cid)
                if code is None:
                    code = 255  # conmon died without writing the exit file
            if code is None:
                continue
            inst.exited = True
            self.conmons.pop(inst.cid, None)
            cs = (self.rt.init_containers if inst.init else self.rt.containers).get(name)
            if cs is None:
                continue
            cs.state = "exited"
            cs.exit_code = code
            cs.finished_at = now
            if inst.kill_deadline is None and oom_killed(inst.cgroups_path):
                cs.reason = "OOMKilled"
            else:
                cs.reason = "Completed" if code == 0 else "Error"
            cs.message = self._termination_message(name, inst, code)
            cs.ready = cs.started = False
            self.probes.pop(name, None)
            self.r.spawn(self._remove_instance(inst))

    def _termination_message(self, name: str, inst: Instance, code: int) -> str:
        spec = next((c for c in self._all_specs() if c["name"] == name), {})
        path = os.path.join(self.r.data_dir, "containers", inst.cid, "termination-log")
        with contextlib.suppress(OSError), open(path, "rb") as f:
            msg = f.read(4096).decode("utf-8", "replace")
            if msg:
                return msg
        if spec.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code != 0:
            return _tail_log(inst.log_path, 80)
        return ""

    def _all_specs(self) -> list[Obj]:
        s = self.spec.get("spec") or {}
        return list(s.get("initContainers") or []) + list(s.get("containers") or [])

    async def _remove_instance(self, inst: Instance) -> None:
        await self.r.runc.delete(inst.cid, force=True)
        await asyncio.to_thread(self.r.rootfs.remove, inst.cid)
        remove_cgroup(inst.cgroups_path)

    async def _lookups(self, pod: Obj, container: Obj) -> dict[tuple[str, str], Obj | None]:
        wanted: set[tuple[str, str]] = set()
        for src in container.get("envFrom") or []:
            if src.get("configMapRef"):
                wanted.add(("configmaps", src["configMapRef"].get("name", "")))
            if src.get("secretRef"):
                wanted.add(("secrets", src["secretRef"].get("name", "")))
        for e in container.get("env") or []:
            vf = e.get("valueFrom") or {}
            if vf.get("configMapKeyRef"):
                wanted.add(("configmaps", vf["configMapKeyRef"].get("name", "")))
            if vf.get("secretKeyRef"):
                wanted.add(("secrets", vf["secretKeyRef"].get("name", "")))
        out: dict[tuple[str, str], Obj | None] = {}
        for kind, name in wanted:
            try:
                out[(kind, name)] = await self.r.client.get(CONFIGMAPS if kind == "configmaps" else SECRETS,
                                                            self.namespace, name)
            except ClientError as e:
                if e.code != 404:
                    raise
                out[(kind, name)] = None
        return out

    async def _pull_auths(self, pod: Obj) -> Any:
        secrets = []
        for ref in pod["spec"].get("imagePullSecrets") or []:
            with contextlib.suppress(ClientError):
                secrets.append(await self.r.client.get(SECRETS, self.namespace, ref.get("name", "")))
        return auths_from_secrets(secrets) if secrets else None

    async def _start_container(self, pod: Obj, spec: Obj, init: bool, events: list[SimEvent]) -> float | None:
        name, image = spec["name"], spec.get("image", "")
        table = self.rt.init_containers if init else self.rt.containers

        def image_event(type_: str, reason: str, message: str) -> None:
            events.append(SimEvent(type_, reason, message, name))

        try:
            record = await self.r.puller.ensure_image(image, spec.get("imagePullPolicy"),
                                                      auths=await self._pull_auths(pod),
                                                      backoff_key=f"{self.uid}_{image}", record_event=image_event)
        except ImagePullError as e:
            self.rt.waiting[name] = (e.reason, e.message)
            events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_error(e.reason), name))
            return time.time() + max(0.5, min(self.r.puller.backoff.remaining(f"{self.uid}_{image}"), 300.0))
        prev = table.get(name)
        restart = prev.restart_count + 1 if prev is not None else 0
        cid = _cid(self.uid, name, restart)
        try:
            rootfs = await asyncio.to_thread(self.r.rootfs.prepare, record, cid)
            img = oci.ImageConfig.from_oci(record.config)
            lookups = await self._lookups(pod, spec)
            env = oci.container_env(pod, spec, img, lambda k, n: lookups.get((k, n)), pod_ip=self.ip or "",
                                    node_ip=self.r.node_ip, service_env=await self.r.service_env(pod))
            user = oci.resolve_user(pod, spec, img, rootfs.path)
            mounts = self.r.volumes.mounts_for(pod, spec, self.volume_paths)
            bundle = os.path.join(self.r.data_dir, "containers", cid)
            os.makedirs(bundle, exist_ok=True)
            term_log = os.path.join(bundle, "termination-log")
            open(term_log, "w").close()
            os.chmod(term_log, 0o666)
            dests = {m.destination for m in mounts}
            etc = [("/etc/hosts", "etc-hosts"), ("/etc/hostname", "hostname"), ("/etc/resolv.conf", "resolv.conf")]
            extra = [oci.Mount(dest, os.path.join(self.pod_dir, src)) for dest, src in etc if dest not in dests]
            tpath = spec.get("terminationMessagePath") or "/dev/termination-log"
            if tpath not in dests:
                extra.append(oci.Mount(tpath, term_log))
            cgroups_path = f"{self.r.cgroup_parent}/pod{self.uid}/{cid[:12]}"
            config = oci.build_config(pod, spec, img, rootfs=rootfs.path, env=env, user=user,
                                      mounts=extra + mounts, netns=self.netns, cgroups_path=cgroups_path)
            config["annotations"] = {"io.kubernetes.pod.uid": self.uid, "io.kubernetes.pod.name": self.name,
                                     "io.kubernetes.pod.namespace": self.namespace,
                                     "io.kubernetes.container.name": name}
            _mkdirs_in_rootfs(rootfs.path, [m.destination for m in extra + mounts], extra + mounts)
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(config, f)
        except oci.ContainerConfigError as e:
            with contextlib.suppress(Exception):
                self.r.rootfs.remove(cid)
            self.rt.waiting[name] = (e.reason, str(e))
            events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_error(str(e)), name))
            return time.time() + 2.0
        except (VolumeError, OSError, ClientError) as e:
            with contextlib.suppress(Exception):
                self.r.rootfs.remove(cid)
            self.rt.waiting[name] = ("CreateContainerError", str(e))
            self.rt.failed_creates[name] = time.time()
            events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_error(str(e)), name))
            return time.time()  # the restart back-off (compute_pod_actions) says when to try again
        log_dir = os.path.join(self._log_dir, name)
        os.makedirs(log_dir, exist_ok=True)
        log_path = os.path.join(log_dir, f"{restart}.log")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log_path)  # conmon appends
        try:
            running = await self.r.runc.create_and_start(cid, bundle, log_path, self._exit_dir)
        except RuntimeError_ as e:
            with contextlib.suppress(Exception):
                await self.r.runc.delete(cid, force=True)
                self.r.rootfs.remove(cid)
            shutil.rmtree(bundle, ignore_errors=True)
            remove_cgroup(cgroups_path)
            msg = f"failed to create containerd task: failed to create shim task: OCI runtime create failed: {e}"
            if "no cgroup mount found" in str(e) and not self.r.cgroups.ok:
                msg += f" ({self.r.cgroups.reason})"
            # as containerd: the container exists and exited (128, StartError); it is restarted as a failed
            # container, with the CrashLoopBackOff back-off, and counts in restartCount
            failed = ContainerState(name=name, state="exited", exit_code=START_ERROR_EXIT_CODE,
                                    reason=START_ERROR_REASON, message=msg, finished_at=time.time(),
                                    container_id=CONTAINER_ID_PREFIX + cid, image=record.name,
                                    image_id=record.image_ref, restart_count=restart)
            if prev is not None:
                failed.last_terminated = prev.terminated_api() if prev.state == "exited" else prev.last_terminated
            table[name] = failed
            self.start_errors.add(name)
            self.rt.failed_creates.pop(name, None)
            self.rt.waiting[name] = ("RunContainerError", msg)
            events.append(SimEvent("Warning", lc.EV_FAILED, lc.msg_error(msg), name))
            return time.time()  # the restart back-off (compute_pod_actions) says when to try again
        now = time.time()
        events.append(SimEvent("Normal", lc.EV_CREATED, lc.msg_created(name), name))
        events.append(SimEvent("Normal", lc.EV_STARTED, lc.msg_started(name), name))
        old = self.instances.get(name)
        if old is not None:
            self.previous[name] = old
        inst = Instance(name, cid, init, restart, log_path, cgroups_path, now, record.name, record.image_ref)
        self.instances[name] = inst
        if running.conmon is not None:
            self.conmons[cid] = running.conmon
            self.r.spawn(self._watch(running.conmon))
        cs = ContainerState(name=name, state="running", started_at=now, container_id=CONTAINER_ID_PREFIX + cid,
                            image=record.name, image_id=record.image_ref, restart_count=restart,
                            started=not spec.get("startupProbe"), ready=False)
        if prev is not None:
            cs.last_terminated = prev.terminated_api() if prev.state == "exited" else prev.last_terminated
        table[name] = cs
        self.rt.waiting.pop(name, None)
        self.rt.failed_creates.pop(name, None)
        self.start_errors.discard(name)
        probes = ContainerProbes(spec, now)
        if probes.states:
            self.probes[name] = probes
        else:
            cs.ready = True
        cs.ready = cs.ready and not spec.get("readinessProbe") and not spec.get("startupProbe")
        hook = ((spec.get("lifecycle") or {}).get("postStart"))
        if hook:
            err = await self._run_hook(hook, spec, cid, float(pod["spec"].get("terminationGracePeriodSeconds",
                                                                              DEFAULT_GRACE)))
            if err is not None:
                events.append(SimEvent("Warning", "FailedPostStartHook", err, name))
                await self._stop_container(pod, name, events, reason_event=False)
        return None

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self.r.notify(self.key)

    async def _run_hook(self, hook: Obj, spec: Obj, cid: str, timeout: float) -> str | None:
        async def ex(argv: list[str], t: float) -> tuple[int, bytes]:
            return await self.exec_capture(cid, argv, t)
        res = await run_probe({**hook, "timeoutSeconds": timeout}, spec, self.ip or "127.0.0.1", ex)
        if res.ok:
            return None
        if "exec" in hook:
            return (f"Exec lifecycle hook ({hook['exec'].get('command')}) for Container \"{spec['name']}\" in Pod "
                    f"\"{self.name}_{self.namespace}({self.uid})\" failed - error: command "
                    f"'{' '.join(hook['exec'].get('command') or [])}' exited with {res.message}")
        return f"HTTP lifecycle hook ({(hook.get('httpGet') or {}).get('path', '')}) for Container " \
               f"\"{spec['name']}\" in Pod \"{self.name}_{self.namespace}({self.uid})\" failed - error: {res.message}"

    async def _stop_container(self, pod: Obj, name: str, events: list[SimEvent], *, reason_event: bool,
                              grace: float | None = None) -> None:
        inst = self.instances.get(name)
        if inst is None or inst.exited or inst.kill_deadline is not None:
            return
        if reason_event:
            events.append(SimEvent("Normal", lc.EV_KILLING, lc.msg_killing(name), name))
        if grace is None:
            grace = float(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        spec = next((c for c in self._all_specs() if c["name"] == name), {})
        inst.kill_deadline = time.time() + grace
        pre = (spec.get("lifecycle") or {}).get("preStop")

        async def stop() -> None:
            if pre:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(max(grace, 0.1)):
                        await self._run_hook(pre, spec, inst.cid, grace)
            await self.r.runc.kill(inst.cid, signal.SIGTERM)
            if grace <= 0:
                await self.r.runc.kill(inst.cid, signal.SIGKILL)
            self.r.notify(self.key)
        self.r.spawn(stop())

    async def _escalate(self) -> None:
        now = time.time()
        for inst in self.instances.values():
            if not inst.exited and inst.kill_deadline is not None and now >= inst.kill_deadline:
                await self.r.runc.kill(inst.cid, signal.SIGKILL)

    async def _probe(self, pod: Obj, now: float, events: list[SimEvent]) -> None:
        await self._escalate()
        for name, probes in list(self.probes.items()):
            inst = self.instances.get(name)
            cs = self._table(name).get(name)
            if inst is None or inst.exited or cs is None or cs.state != "running" or inst.kill_deadline:
                continue
            due = probes.next_due()
            if due is None or due > now:
                continue

            async def ex(argv: list[str], t: float, cid: str = inst.cid) -> tuple[int, bytes]:
                return await self.exec_capture(cid, argv, t)
            before = {k: (s.failures, s.result) for k, s in probes.states.items()}
            await probes.run_due(now, self.ip or "127.0.0.1", ex)
            for kind, s in probes.states.items():
                if s.failures > before[kind][0] and s.message:
                    events.append(SimEvent("Warning", "Unhealthy", probe_event_message(kind, s.message), name))
            cs.started = probes.started
            cs.ready = probes.ready
            if probes.liveness_failed:
                events.append(SimEvent("Normal", lc.EV_KILLING, liveness_kill_message(name, probes.kind_failed),
                                       name))
                probes.liveness_failed = ""
                await self._stop_container(pod, name, events, reason_event=False)

    async def _terminate(self, pod: Obj, now: float, events: list[SimEvent]) -> float | None:
        if self.terminated:
            return None
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        if self.terminate_started is None:
            self.terminate_started = now
            for name, inst in self.instances.items():
                if not inst.exited:
                    await self._stop_container(pod, name, events, reason_event=True, grace=float(grace))
        await self._escalate()
        running = [i for i in self.instances.values() if not i.exited]
        if running:
            deadlines = [i.kill_deadline for i in running if i.kill_deadline is not None]
            nxt = min(deadlines) if deadlines else now + 0.5
            return max(nxt, now + 0.05) if nxt > now else now + 0.2
        await self.teardown()
        self.terminated = True
        return None

    async def teardown(self) -> None:
        """Stop whatever still runs (SIGKILL), remove containers, rootfs, cgroups, network and volumes."""
        if self.torn_down:
            return
        self.torn_down = True
        for inst in self.instances.values():
            if not inst.exited:
                await self.r.runc.kill(inst.cid, signal.SIGKILL)
        for inst in list(self.instances.values()) + list(self.previous.values()):
            with contextlib.suppress(Exception):
                await self.r.runc.delete(inst.cid, force=True)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.r.rootfs.remove, inst.cid)
            remove_cgroup(inst.cgroups_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._exit_dir, inst.cid))
            shutil.rmtree(os.path.join(self.r.data_dir, "containers", inst.cid), ignore_errors=True)
        for proc in self.conmons.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 2)
        self.conmons.clear()
        remove_cgroup(f"{self.r.cgroup_parent}/pod{self.uid}")
        if not (self.spec.get("spec") or {}).get("hostNetwork"):
            with contextlib.suppress(Exception):
                await self.r.network.teardown(self.uid)
        await self.r.volumes.teardown(self.uid)
        # the pod's logs go with it (upstream's kubelet removes /var/log/pods/<ns>_<name>_<uid>)
        shutil.rmtree(self._log_dir, ignore_errors=True)

    @property
    def _log_dir(self) -> str:
        return os.path.join(self.r.data_dir, "logs", f"{self.namespace}_{self.name}_{self.uid}")

    # -- streaming support -----------------------------------------------------------------------------

    def container_id(self, name: str) -> str | None:
        inst = self.instances.get(name)
        return inst.cid if inst is not None and not inst.exited else None

    def log_path(self, name: str, previous: bool = False) -> str | None:
        inst = (self.previous if previous else self.instances).get(name)
        return inst.log_path if inst is not None else None

    async def exec_capture(self, cid: str, argv: list[str], timeout: float) -> tuple[int, bytes]:
        proc = await self.r.runc.exec(cid, argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                      stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _mkdirs_in_rootfs(rootfs: str, dests: list[str], mounts: list[oci.Mount]) -> None:
    """Bind-mount targets must exist: files for file sources, directories otherwise (runc would make dirs)."""
    for m in mounts:
        target = os.path.join(rootfs, m.destination.lstrip("/"))
        if os.path.lexists(target) or not os.path.isfile(m.source):
            continue
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()


def _tail_log(path: str, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()[-65536:]
    except OSError:
        return ""
    out = []
    for line in data.decode("utf-8", "replace").splitlines()[-lines:]:
        parts = line.split(" ", 3)
        out.append(parts[3] if len(parts) == 4 else line)
    return "\n".join(out)
