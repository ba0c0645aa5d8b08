"""This machine's etcd member: its flags, process, and membership changes (through the v3 JSON gateway).

The member runs as a process of its own session, as a static pod does under a kubelet: a kill -9 of the
`kubelite` process leaves it serving (the cluster keeps its quorum), and the next start adopts it through its
pid file. A clean stop of `kubelite init`/`join --control-plane` stops it too.

Listening (kubeadm's stacked etcd): clients on https://<advertise>:2379 and https://127.0.0.1:2379, peers on
https://<advertise>:2380, metrics on http://127.0.0.1:2381; data in <data_dir>/etcd; TLS from pki/etcd/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .pki import EtcdPKI, ensure_etcd_pki

log = logging.getLogger("kubelite.etcd")

CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381
DEBIAN_PACKAGE = "etcd-server"
CLIENT_PACKAGE = "etcd-client"


class EtcdError(Exception):
    """etcd could not be started, reached or changed; the message says what to do."""


def etcd_binary() -> str | None:
    return shutil.which("etcd") or (("/usr/bin/etcd") if os.access("/usr/bin/etcd", os.X_OK) else None)


def etcdctl_binary() -> str | None:
    return shutil.which("etcdctl") or (("/usr/bin/etcdctl") if os.access("/usr/bin/etcdctl", os.X_OK) else None)


def binary_origin(path: str) -> str:
    """Which Debian package ships `path` (dpkg -S), or "" when none does."""
    dpkg = shutil.which("dpkg")
    if not dpkg:
        return ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run([dpkg, "-S", os.path.realpath(path)], capture_output=True, text=True, timeout=5)
        if r.returncode == 0 and ":" in r.stdout:
            return r.stdout.split(":", 1)[0].strip()
    return ""


def etcd_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "etcd")


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@dataclass
class MemberConfig:
    data_dir: str  # kubelite's data dir; the member's data is in <data_dir>/etcd
    name: str
    advertise: str  # this machine's address other members reach
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    metrics_port: int = METRICS_PORT
    initial_cluster: str = ""  # name=peerURL,...; default: this member alone
    initial_cluster_state: str = "new"
    extra_args: list[str] = field(default_factory=list)

    @property
    def dir(self) -> str:
        return etcd_dir(self.data_dir)

    @property
    def member_dir(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def client_url(self) -> str:
        return _url(self.advertise, self.client_port)

    @property
    def local_client_url(self) -> str:
        return _url("127.0.0.1", self.client_port)

    @property
    def peer_url(self) -> str:
        return _url(self.advertise, self.peer_port)

    @property
    def pid_file(self) -> str:
        return os.path.join(self.dir, "etcd.pid")

    @property
    def log_file(self) -> str:
        return os.path.join(self.dir, "etcd.log")

    def argv(self, binary: str, pki: EtcdPKI) -> list[str]:
        clients = sorted({self.client_url, self.local_client_url})
        return [binary, "--name", self.name, "--data-dir", self.member_dir,
                "--listen-client-urls", ",".join(clients), "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
                "--initial-cluster-state", self.initial_cluster_state,
                "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}",
                "--cert-file", pki.server_cert, "--key-file", pki.server_key,
                "--trusted-ca-file", pki.ca_file, "--client-cert-auth=true",
                "--peer-cert-file", pki.peer_cert, "--peer-key-file", pki.peer_key,
                "--peer-trusted-ca-file", pki.ca_file, "--peer-client-cert-auth=true",
                "--snapshot-count", "10000", "--logger", "zap", "--log-level", "warn", *self.extra_args]


def client_ssl(pki: EtcdPKI, *, apiserver: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    if apiserver:
        ctx.load_cert_chain(pki.apiserver_cert, pki.apiserver_key)
    else:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


class EtcdAdmin:
    """Cluster operations through the v3 JSON gateway of whichever of `endpoints` answers first."""

    def __init__(self, endpoints: list[str], pki: EtcdPKI, timeout: float = 5.0) -> None:
        self.endpoints = list(endpoints)
        self.pki = pki
        self.timeout = timeout
        self._ssl = client_ssl(pki)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EtcdAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, path: str, body: dict[str, Any], *, endpoint: str | None = None) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                  connector=aiohttp.TCPConnector(ssl=self._ssl))
        errors = []
        for url in [endpoint] if endpoint else self.endpoints:
            try:
                async with self._session.post(url + path, json=body) as resp:
                    answer = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise EtcdError(f"{url}{path}: {resp.status} {answer.get('message') or answer.get('error')}")
                    return answer
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
                errors.append(f"{url}: {e or type(e).__name__}")
        raise EtcdError("no etcd member answered: " + "; ".join(errors))

    async def members(self) -> list[dict[str, Any]]:
        return (await self.call("/v3/cluster/member/list", {})).get("members") or []

    async def add_member(self, peer_url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """MemberAdd: (the new member, every member after the change)."""
        answer = await self.call("/v3/cluster/member/add", {"peerURLs": [peer_url]})
        return answer.get("member") or {}, answer.get("members") or []

    async def remove_member(self, member_id: str) -> None:
        await self.call("/v3/cluster/member/remove", {"ID": member_id})

    async def status(self, endpoint: str) -> dict[str, Any]:
        return await self.call("/v3/maintenance/status", {}, endpoint=endpoint)

    async def healthy(self, endpoint: str) -> bool:
        """Whether `endpoint` serves linearizable reads (it has a leader and a quorum)."""
        try:
            await self.call("/v3/kv/range", {"key": base64.b64encode(b"health").decode()}, endpoint=endpoint)
            return True
        except EtcdError:
            return False


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def running_pid(cfg_or_dir: MemberConfig | str) -> int | None:
    """The pid of the etcd member serving this data dir, when one runs."""
    directory = cfg_or_dir.dir if isinstance(cfg_or_dir, MemberConfig) else etcd_dir(cfg_or_dir)
    try:
        with open(os.path.join(directory, "etcd.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if not _pid_alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return None
    return pid if os.path.join(directory, "data").encode() in cmd else None


class LocalMember:
    """This machine's member process."""

    def __init__(self, cfg: MemberConfig, pki: EtcdPKI) -> None:
        self.cfg = cfg
        self.pki = pki
        self.pid: int | None = None
        self.proc: subprocess.Popen | None = None

    @classmethod
    def prepare(cls, cfg: MemberConfig) -> LocalMember:
        os.makedirs(cfg.dir, mode=0o700, exist_ok=True)
        return cls(cfg, ensure_etcd_pki(cfg.data_dir, cfg.name, [cfg.advertise]))

    @property
    def endpoints(self) -> list[str]:
        """Where this machine's API server reaches etcd: its own member first."""
        return [self.cfg.local_client_url]

    def start(self) -> int:
        binary = etcd_binary()
        if binary is None:
            raise EtcdError(f"etcd is not installed: `apt-get install {DEBIAN_PACKAGE}` (or `kubelite doctor "
                            f"--fix`), or keep the cluster state in SQLite (drop --cluster-init)")
        pid = running_pid(self.cfg)
        if pid is not None:
            log.info("adopting the running etcd member (pid %d)", pid)
            self.pid = pid
            return pid
        with open(self.cfg.log_file, "ab") as out:
            self.proc = subprocess.Popen(self.cfg.argv(binary, self.pki), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        with open(self.cfg.pid_file, "w") as f:
            f.write(f"{self.pid}\n")
        return self.pid

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and _pid_alive(self.pid)

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError), open(self.cfg.log_file, errors="replace") as f:
            return f.read()[-chars:]
        return ""

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with EtcdAdmin([self.cfg.local_client_url], self.pki, timeout=2.0) as admin:
            while True:
                if not self.alive():
                    raise EtcdError(f"etcd exited before serving; its log ({self.cfg.log_file}):\n{self.log_tail()}")
                if await admin.healthy(self.cfg.local_client_url):
                    return
                if time.monotonic() >= deadline:
                    raise EtcdError(f"etcd did not serve within {timeout:.0f}s (no quorum?); its log "
                                    f"({self.cfg.log_file}):\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        if self.pid is None:
            return
        stop_pid(self.pid, timeout)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
        with contextlib.suppress(OSError):
            os.unlink(self.cfg.pid_file)
        self.pid = None


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def save_join_state(cfg: MemberConfig, initial_cluster: str) -> None:
    """What a member added to an existing cluster starts with, kept until its data dir exists."""
    with open(os.path.join(cfg.dir, "initial-cluster.json"), "w") as f:
        json.dump({"initial_cluster": initial_cluster, "state": "existing"}, f)


def load_join_state(cfg: MemberConfig) -> None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open(os.path.join(cfg.dir, "initial-cluster.json")) as f:
            state = json.load(f)
        cfg.initial_cluster = state["initial_cluster"]
        cfg.initial_cluster_state = state["state"]


async def start_local_member(cfg: MemberConfig, timeout: float = 60.0) -> LocalMember:
    """Certificates, process, readiness: the member `--cluster-init` (or a control-plane join) runs here."""
    loop = asyncio.get_running_loop()
    member = await loop.run_in_executor(None, LocalMember.prepare, cfg)
    load_join_state(cfg)
    await loop.run_in_executor(None, member.start)
    try:
        await member.wait_ready(timeout)
    except BaseException:
        if member.proc is not None:  # ours, never served: do not leave it behind
            member.stop()
        raise
    return member


async def leave_cluster(data_dir: str, timeout: float = 5.0) -> str:
    """Remove this machine's member from its cluster (through the members that answer); returns what was
    done, "" when there is no member here. EtcdError when the cluster cannot be reached."""
    pki = EtcdPKI(os.path.join(data_dir, "pki"))
    directory = etcd_dir(data_dir)
    if not os.path.isdir(directory) or not os.path.exists(pki.client_cert):
        return ""
    endpoints: list[str] = []
    own_peer = ""
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(directory, "cluster.json")) as f:
            known = json.load(f)
        endpoints = list(known.get("endpoints") or [])
        own_peer = known.get("peer_url", "")
    if not endpoints:
        return ""
    async with EtcdAdmin(endpoints, pki, timeout=timeout) as admin:
        members = await admin.members()
        mine = [m for m in members if own_peer in (m.get("peerURLs") or [])]
        if not mine:
            return "this machine's etcd member was not in the cluster any more"
        if len(members) == 1:
            return "this machine's etcd member was the last one: the cluster's data goes with it"
        others = [u for m in members if m not in mine for u in m.get("clientURLs") or []]
        admin.endpoints = others + admin.endpoints
        await admin.remove_member(mine[0]["ID"])
        return f"Removed etcd member {mine[0].get('name') or mine[0]['ID']} from the cluster"


def remember_cluster(cfg: MemberConfig, members: list[dict[str, Any]]) -> None:
    """The members' client URLs (for `reset` when the local member is gone) and this member's peer URL."""
    endpoints = [cfg.local_client_url] + [u for m in members for u in m.get("clientURLs") or []
                                          if u != cfg.client_url]
    with open(os.path.join(cfg.dir, "cluster.json"), "w") as f:
        json.dump({"endpoints": endpoints, "peer_url": cfg.peer_url}, f)
