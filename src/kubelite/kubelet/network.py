"""Pod networking with the standard CNI plugins (containernetworking-plugins): one network namespace per pod,
`loopback` + `bridge` (bridge `kubelite0`, gateway, masquerade, hairpin) with `host-local` IPAM over the node's
podCIDR, and `portmap` for hostPorts.  A small libcni: plugins run in order with the previous result on
stdin; the ADD result is cached under the data dir for DEL.

Quirks handled (node-runtime.md §3): the plugins live in /usr/lib/cni on Debian (also /opt/cni/bin); bridge
never deletes the bridge and portmap leaves its CNI-HOSTPORT-* chains on DEL, so `cleanup_node()` owns that.
ADD ≈ 95 ms, DEL ≈ 190 ms here.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def netns_name(pod_uid: str) -> str:
    return "kl-" + pod_uid.replace("-", "")[:16]


def netns_path(pod_uid: str) -> str:
    return os.path.join(NETNS_DIR, netns_name(pod_uid))


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


@dataclass
class PodNetwork:
    """The CNI network of one node."""

    data_dir: str
    bridge: str = "kubelite0"
    network_name: str = "kubelite"
    mtu: int = 1500
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def state_dir(self) -> str:
        return os.path.join(self.data_dir, "cni")

    def _conf(self, cidr: str) -> Obj:
        return {"cniVersion": CNI_VERSION, "name": self.network_name, "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "mtu": self.mtu,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cidr}]], "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": os.path.join(self.state_dir, "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ]}

    async def _plugin(self, conf: Obj, command: str, cid: str, netns: str, ifname: str,
                      runtime_config: Obj | None = None, prev: Obj | None = None) -> Obj:
        net = {k: v for k, v in conf.items() if k != "plugins"}
        body = {**net, **{k: v for k, v in conf.items() if k not in ("capabilities",)}}
        body.update({"name": net.get("name", self.network_name), "cniVersion": CNI_VERSION})
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
            path = netns_path(uid)
            if not os.path.exists(path):
                await _run("ip", "netns", "add", netns_name(uid))
            os.makedirs(os.path.join(self.state_dir, "results"), exist_ok=True)
            cached = self._cached(uid)
            if cached and cached.get("ip"):
                return path, cached["ip"]
            await self._plugin({"type": "loopback"}, "ADD", uid, path, "lo")
            conf = self._conf(cidr)
            rtc = {"portMappings": host_ports(pod)}
            result: Obj | None = None
            try:
                for plugin in conf["plugins"]:
                    result = await self._plugin({**plugin, "name": conf["name"]}, "ADD", uid, path, "eth0", rtc,
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
                json.dump({"cidr": cidr, "ip": ip, "portMappings": rtc["portMappings"], "result": result}, f)
            return path, ip

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
                await self._plugin({**plugin, "name": conf["name"]}, "DEL", uid, path if os.path.exists(path) else "",
                                   "eth0", rtc, result)
            except NetworkError as e:
                errors.append(str(e))
        if errors:
            log.warning("CNI DEL for %s: %s", uid, "; ".join(errors))

    async def teardown(self, pod_uid: str) -> None:
        """CNI DEL (tolerates missing state), then remove the netns."""
        lock = self._locks.setdefault(pod_uid, asyncio.Lock())
        async with lock:
            path = netns_path(pod_uid)
            cached = self._cached(pod_uid)
            if cached is not None:
                await self._del(pod_uid, path, self._conf(cached.get("cidr") or "10.244.0.0/24"),
                                {"portMappings": cached.get("portMappings") or []}, cached.get("result"))
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._result_path(pod_uid))
            if os.path.exists(path):
                await _run("ip", "netns", "delete", netns_name(pod_uid), check=False)
        self._locks.pop(pod_uid, None)

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
