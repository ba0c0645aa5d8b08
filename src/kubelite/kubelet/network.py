"""Pod networking with the standard CNI plugins (containernetworking-plugins): one network namespace per pod,
`loopback` + `bridge` (bridge `kubelite0`, gateway, masquerade, hairpin) with `host-local` IPAM over the node's
podCIDR, and `portmap` for hostPorts.  A small libcni: plugins run in order with the previous result on
stdin; the ADD result is cached under the data dir for DEL.

Several nodes may share one kernel (network namespaces on one host, each with its agent and data dir): the pod
network namespaces in /run/netns, the one host-wide place this module writes to, are named
`kl-<node tag>-<pod uid>` (the tag a short hash of the node name and its data dir: two clusters on one host may
both have a `node01`), so a node only ever lists and removes its own.  Everything else (the IPAM and result cache) is under the node's data dir, and the bridge and iptables
chains are per network namespace.  Names of the earlier form `kl-<pod uid>` (state written before the tag)
are still found through the result cache and removed with their pod.

Quirks handled (node-runtime.md §3): the plugins live in /usr/lib/cni on Debian (also /opt/cni/bin); bridge
never deletes the bridge and portmap leaves its CNI-HOSTPORT-* chains on DEL, so `cleanup_node()` owns that.
ADD ≈ 95 ms, DEL ≈ 190 ms here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("kubelite.kubelet.network")

Obj = dict[str, Any]
CNI_PATHS = ("/usr/lib/cni", "/opt/cni/bin")
NETNS_DIR = "/var/run/netns"
CNI_VERSION = "1.0.0"


class NetworkError(Exception):
    pass


def cni_path() -> str:
    return ":".join(p for p in CNI_PATHS if os.path.isdir(p))


NETNS_PREFIX = "kl-"


def node_tag(node: str, scope: str = "") -> str:
    """A short stable name for a node (of the data dir `scope`) in host-wide names: netns names must stay short
    and path-safe."""
    return hashlib.sha256(f"{node}\0{scope}".encode()).hexdigest()[:8]


def _uid_part(pod_uid: str) -> str:
    return pod_uid.replace("-", "")[:16]


def netns_name(pod_uid: str, node: str = "", scope: str = "") -> str:
    """`kl-<node tag>-<uid>`; without a node, the earlier `kl-<uid>`."""
    if not node:
        return NETNS_PREFIX + _uid_part(pod_uid)
    return f"{NETNS_PREFIX}{node_tag(node, scope)}-{_uid_part(pod_uid)}"


def netns_path(pod_uid: str, node: str = "", scope: str = "") -> str:
    return os.path.join(NETNS_DIR, netns_name(pod_uid, node, scope))


def host_ports(pod: Obj) -> list[Obj]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append({"hostPort": int(p["hostPort"]), "containerPort": int(p["containerPort"]),
                            "protocol": (p.get("protocol") or "TCP").lower(),
                            **({"hostIP": p["hostIP"]} if p.get("hostIP") else {})})
    return out


async def _run(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
               check: bool = True) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate(stdin)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv[:3])}: {(err or out).decode(errors='replace').strip()}")
    return proc.returncode or 0, out, err


async def _delete_netns(path: str) -> None:
    """`ip netns delete`, and the file itself when it is no mount point (ip refuses those)."""
    await _run("ip", "netns", "delete", os.path.basename(path), check=False)
    with contextlib.suppress(OSError):
        os.unlink(path)


@dataclass
class PodNetwork:
    """The CNI network of one node."""

    data_dir: str
    node: str = ""  # the node's name: its pods' netns names carry its tag
    bridge: str = "kubelite0"
    network_name: str = "kubelite"
    mtu: int = 1500
    # the bridge plugin's ipMasq hides every pod's address behind the node's for any destination outside the
    # node's own podCIDR, other nodes' pods included; with the built-in pod network (flannel) off-cluster
    # traffic is masqueraded there instead and pods see each other's real addresses
    masquerade: bool = True
    # a CNI configuration directory (the kubelet's --cni-conf-dir, /etc/cni/net.d): when it holds a network, the
    # first by file name is used instead of the built-in bridge, as upstream's runtimes pick it (a CNI the user
    # installs, e.g. Calico, with the built-in pod network off)
    conf_dir: str | None = None
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def state_dir(self) -> str:
        return os.path.join(self.data_dir, "cni")

    @property
    def scope(self) -> str:
        return os.path.realpath(self.data_dir)

    def netns_name(self, pod_uid: str) -> str:
        """This node's name for the pod's network namespace."""
        return netns_name(pod_uid, self.node, self.scope)

    def netns_path(self, pod_uid: str) -> str:
        return os.path.join(NETNS_DIR, self.netns_name(pod_uid))

    def user_conf(self) -> Obj | None:
        """The first network in `conf_dir` (*.conflist, *.conf, *.json in name order), as a conflist; None when
        there is none. A file that does not parse is skipped with a warning, as libcni does."""
        if not self.conf_dir:
            return None
        try:
            names = sorted(n for n in os.listdir(self.conf_dir) if n.endswith((".conflist", ".conf", ".json")))
        except OSError:
            return None
        for name in names:
            try:
                with open(os.path.join(self.conf_dir, name)) as f:
                    conf = json.load(f)
            except (OSError, ValueError) as e:
                log.warning("CNI config %s skipped: %s", name, e)
                continue
            if not isinstance(conf, dict):
                continue
            if name.endswith(".conflist"):
                if isinstance(conf.get("plugins"), list) and conf["plugins"]:
                    return conf
                continue
            if conf.get("type"):  # a single-plugin .conf
                return {"cniVersion": conf.get("cniVersion", CNI_VERSION), "name": conf.get("name", name),
                        "plugins": [conf]}
        return None

    def _conf(self, cidr: str) -> Obj:
        user = self.user_conf()
        if user is not None:
            return user
        return {"cniVersion": CNI_VERSION, "name": self.network_name, "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": self.masquerade, "hairpinMode": True,
             "mtu": self.mtu,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cidr}]], "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": os.path.join(self.state_dir, "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ]}

    async def _plugin(self, conf: Obj, command: str, cid: str, netns: str, ifname: str,
                      runtime_config: Obj | None = None, prev: Obj | None = None) -> Obj:
        net = {k: v for k, v in conf.items() if k != "plugins"}
        body = {**net, **{k: v for k, v in conf.items() if k not in ("capabilities",)}}
        body.update({"name": net.get("name", self.network_name), "cniVersion": net.get("cniVersion") or CNI_VERSION})
        body.pop("plugins", None)
        if runtime_config and conf.get("capabilities"):
            body["runtimeConfig"] = {k: v for k, v in runtime_config.items() if conf["capabilities"].get(k)}
        if prev is not None:
            body["prevResult"] = prev
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
               "CNI_PATH": cni_path(), "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        binary = next((os.path.join(p, conf["type"]) for p in CNI_PATHS if os.path.exists(os.path.join(p, conf["type"]))),
                      None)
        if binary is None:
            raise NetworkError(f"failed to find plugin \"{conf['type']}\" in path {list(CNI_PATHS)}")
        rc, out, err = await _run(binary, stdin=json.dumps(body).encode(), env=env, check=False)
        if rc != 0:
            try:
                msg = json.loads(out).get("msg") or out.decode()
            except ValueError:
                msg = (err or out).decode(errors="replace")
            raise NetworkError(f"plugin type=\"{conf['type']}\" name=\"{self.network_name}\" failed ({command}): {msg}")
        if command == "ADD" and out.strip():
            return json.loads(out)
        return prev or {}

    async def setup(self, pod: Obj, cidr: str) -> tuple[str, str]:
        """Create the pod's netns and attach it; returns (netns path, pod IP)."""
        uid = pod["metadata"]["uid"]
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            cached = self._cached(uid)
            if cached and cached.get("ip"):
                return self._recorded_netns(uid, cached), cached["ip"]
            path = self.netns_path(uid)
            if os.path.lexists(path) and not os.path.ismount(path):
                # a name without its namespace (mounted in a mount namespace that is gone): `ip netns add`
                # would refuse it
                with contextlib.suppress(OSError):
                    os.unlink(path)
            if not os.path.exists(path):
                await _run("ip", "netns", "add", self.netns_name(uid))
            os.makedirs(os.path.join(self.state_dir, "results"), exist_ok=True)
            await self._plugin({"type": "loopback"}, "ADD", uid, path, "lo")
            conf = self._conf(cidr)
            rtc = {"portMappings": host_ports(pod)}
            result: Obj | None = None
            try:
                for plugin in conf["plugins"]:
                    result = await self._plugin({**plugin, "name": conf["name"],
                                                 "cniVersion": conf.get("cniVersion", CNI_VERSION)}, "ADD", uid,
                                                path, "eth0", rtc,
                                                result)
            except NetworkError:
                with contextlib.suppress(Exception):
                    await self._del(uid, path, conf, rtc, result)
                raise
            ip = ""
            for entry in (result or {}).get("ips") or []:
                ip = entry.get("address", "").split("/")[0]
                break
            with open(self._result_path(uid), "w") as f:
                json.dump({"cidr": cidr, "ip": ip, "portMappings": rtc["portMappings"], "result": result,
                           "netns": path, "conf": conf}, f)
            return path, ip

    def _recorded_netns(self, uid: str, cached: Obj | None) -> str:
        """The netns the pod was set up in: as recorded, else (state from before the node tag) the earlier name
        when it exists, else this node's name for it."""
        if cached and cached.get("netns"):
            return str(cached["netns"])
        legacy = netns_path(uid)
        return legacy if os.path.exists(legacy) else self.netns_path(uid)

    def _result_path(self, uid: str) -> str:
        return os.path.join(self.state_dir, "results", uid + ".json")

    def _cached(self, uid: str) -> Obj | None:
        try:
            with open(self._result_path(uid)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    async def _del(self, uid: str, path: str, conf: Obj, rtc: Obj, result: Obj | None) -> None:
        errors = []
        for plugin in reversed(conf["plugins"]):
            try:
                await self._plugin({**plugin, "name": conf["name"], "cniVersion": conf.get("cniVersion", CNI_VERSION)},
                                   "DEL", uid, path if os.path.exists(path) else "",
                                   "eth0", rtc, result)
            except NetworkError as e:
                errors.append(str(e))
        if errors:
            log.warning("CNI DEL for %s: %s", uid, "; ".join(errors))

    async def teardown(self, pod_uid: str) -> None:
        """CNI DEL (tolerates missing state), then remove the netns."""
        lock = self._locks.setdefault(pod_uid, asyncio.Lock())
        async with lock:
            cached = self._cached(pod_uid)
            path = self._recorded_netns(pod_uid, cached)
            if cached is not None:
                await self._del(pod_uid, path, cached.get("conf") or self._conf(cached.get("cidr") or "10.244.0.0/24"),
                                {"portMappings": cached.get("portMappings") or []}, cached.get("result"))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._result_path(pod_uid))
            for p in {path, self.netns_path(pod_uid)}:
                if os.path.lexists(p):
                    await _delete_netns(p)
        self._locks.pop(pod_uid, None)

    def own_netns(self) -> dict[str, str]:
        """This node's pod network namespaces in /run/netns: name -> the uid part of the name.  Only names
        with this node's tag: other nodes sharing the kernel have their own."""
        if not self.node:
            return {}
        prefix = f"{NETNS_PREFIX}{node_tag(self.node, self.scope)}-"
        with contextlib.suppress(OSError):
            return {n: n[len(prefix):] for n in os.listdir(NETNS_DIR) if n.startswith(prefix)}
        return {}

    async def remove_orphan_netns(self, known_uids: set[str]) -> list[str]:
        """Remove this node's network namespaces whose pod it does not know (left by a crash between `ip netns
        add` and the result cache); returns their names."""
        known = {_uid_part(u) for u in known_uids} | {_uid_part(u) for u in self.known_pods()}
        removed = []
        for name, part in self.own_netns().items():
            if part not in known:
                await _delete_netns(os.path.join(NETNS_DIR, name))
                removed.append(name)
        return removed

    def known_pods(self) -> list[str]:
        with contextlib.suppress(OSError):
            return [f[:-5] for f in os.listdir(os.path.join(self.state_dir, "results")) if f.endswith(".json")]
        return []

    async def cleanup_node(self) -> None:
        """Remove what the plugins leave behind once the node has no pods: the bridge and portmap's chains."""
        await _run("ip", "link", "delete", self.bridge, check=False)
        for chain in ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"):
            for parent in ("PREROUTING", "OUTPUT", "POSTROUTING"):
                while (await _run("iptables", "-w", "-t", "nat", "-D", parent, "-j", chain, check=False))[0] == 0:
                    pass
                while (await _run("iptables", "-w", "-t", "nat", "-D", parent, "-m", "addrtype", "--dst-type",
                                  "LOCAL", "-j", chain, check=False))[0] == 0:
                    pass
                while (await _run("iptables", "-w", "-t", "nat", "-D", parent, "-m", "comment", "--comment",
                                  "CNI portfwd requiring masquerade", "-j", chain, check=False))[0] == 0:
                    pass
            await _run("iptables", "-w", "-t", "nat", "-F", chain, check=False)
            await _run("iptables", "-w", "-t", "nat", "-X", chain, check=False)
