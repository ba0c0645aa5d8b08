"""Several "machines" on one kernel, for the multi-node tests: each machine is a network namespace with a
veth on a bridge; the bridges live in a "switch" namespace of their own, so the root namespace's links,
routes and iptables are never touched. Processes enter a machine with `nsenter --net` only (not
`ip netns exec`, which remounts /sys and so hides the cgroup filesystem runc needs).

    with Machines() as m:                         # master .10, node01 .11, node02 .12 on 192.168.77.0/24
        init = m["master"].kubelite("init", "--apiserver-advertise-address", m["master"].address,
                                    wait=JOIN_LINE)
        ...

Every name carries a random run id (klmn-<id>-...), and a pid file under RUN_DIR names the process that
owns the run, so parallel runs never collide and `cleanup_stale()` can remove what a crashed run left.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pytest

PREFIX = "klmn"
RUN_DIR = "/run/kubelite-multinode"  # tmpfs: gone after a reboot, like the namespaces it describes
KUBECTL = os.environ.get("KUBECTL", "/usr/bin/kubectl")
_NAME = re.compile(rf"^{PREFIX}-([0-9a-f]{{6}})-(.+)$")

# The tutorial's machines: one segment, or two segments routed through the master (the vxlan case)
ONE_SEGMENT = {"master": ["192.168.77.10/24"], "node01": ["192.168.77.11/24"], "node02": ["192.168.77.12/24"]}
TWO_SEGMENTS = {"master": ["192.168.77.10/24", "192.168.78.10/24"], "node01": ["192.168.77.11/24"],
                "node02": ["192.168.78.12/24"]}

JOIN_LINE = r"^kubelite join \S+ .*$"  # what `kubelite init` prints for the workers


def requirements() -> list:
    """pytest marks: namespaces need root, iproute2 and nsenter."""
    return [
        pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
        pytest.mark.skipif(shutil.which("ip") is None or shutil.which("nsenter") is None,
                           reason="needs iproute2 (ip) and util-linux (nsenter)"),
    ]


def kubelite_argv() -> list[str]:
    """How to start kubelite: the package has no __main__, so the console script beside this interpreter,
    else its module."""
    script = os.path.join(os.path.dirname(sys.executable), "kubelite")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "kubelite.cli"]


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # a proxy of the root namespace is unreachable from a machine, and output must reach the log at once
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), to tell it from a later one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _netns_pids(netns: str) -> list[int]:
    r = _ip("netns", "pids", netns, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _kill_and_reap(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL the processes and wait until they are gone; returns those still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # our own children would stay zombies otherwise
            state = None
            with contextlib.suppress(OSError, IndexError):
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            if state in (None, "Z", "X"):
                left.remove(pid)
        if left:
            time.sleep(0.05)
    return left


def list_netns() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _owner_alive(run_id: str) -> bool:
    try:
        with open(os.path.join(RUN_DIR, f"{run_id}.json")) as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return False
    return _start_time(owner["pid"]) == owner["start_time"]


def cleanup_stale() -> list[str]:
    """Remove what runs whose owning process is gone left behind: their namespaces (killing the processes
    still in them), pid files and temp dirs. Returns the namespaces removed."""
    removed = []
    runs: dict[str, list[str]] = {}
    for ns in list_netns():
        if m := _NAME.match(ns):
            runs.setdefault(m.group(1), []).append(ns)
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(RUN_DIR):
            runs.setdefault(name.removesuffix(".json"), [])
    for run_id, namespaces in runs.items():
        if _owner_alive(run_id):
            continue
        for ns in sorted(namespaces, key=lambda n: n.endswith("-switch")):  # machines first
            _kill_and_reap(_netns_pids(ns))
            if _ip("netns", "del", ns, check=False).returncode == 0:
                removed.append(ns)
        pidfile = os.path.join(RUN_DIR, f"{run_id}.json")
        with contextlib.suppress(OSError, ValueError):
            with open(pidfile) as f:
                base = json.load(f).get("base_dir")
            if base and os.path.basename(base).startswith(f"{PREFIX}-{run_id}"):
                shutil.rmtree(base, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pidfile)
    return removed


class Proc:
    """A long-running process in a machine, in a process group of its own, its output in a log file."""

    def __init__(self, argv: Sequence[str], popen: subprocess.Popen, log_path: str) -> None:
        self.argv = list(argv)
        self.popen = popen
        self.log_path = log_path
        self._group_gone = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        return self.output()[-chars:]

    def wait_for(self, condition: str | Callable[[str], object], timeout: float = 60.0):
        """Until the output has a line matching the regex `condition` (returns the match), or until
        `condition(output)` is true (returns its value). Fails with the log's tail if the process exits
        or time runs out."""
        if isinstance(condition, str):
            pattern = re.compile(condition, re.MULTILINE)

            def check(text: str):
                return pattern.search(text)
        else:
            check = condition
        deadline = time.monotonic() + timeout
        while True:
            text = self.output()
            if found := check(text):
                return found
            if not self.alive:
                raise AssertionError(f"{shlex.join(self.argv)} exited with {self.popen.returncode} before "
                                     f"{condition!r}; log {self.log_path}:\n{self.tail()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"{shlex.join(self.argv)}: {condition!r} not seen in {timeout}s; "
                                     f"log {self.log_path}:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the whole group; SIGKILL it if the leader is not gone within `timeout`. Stragglers of the
        group are killed either way."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        if not self._group_gone:  # once only: the group id could be reused much later
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self._group_gone = True
        return self.popen.returncode

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)


_PY_HTTP = """
import ssl, sys, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
try:
    with opener.open(url, timeout=timeout) as r:
        sys.stdout.buffer.write(r.read())
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
"""

# ICMP echo over a raw socket: this image has no ping, and unprivileged ICMP sockets are off
_PY_PING = """
import os, socket, struct, sys, time
dst, timeout = socket.gethostbyname(sys.argv[1]), float(sys.argv[2])
def csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
deadline = time.monotonic() + timeout
seq = 0
while time.monotonic() < deadline:
    seq += 1
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"klmn"
    s.sendto(body[:2] + struct.pack("!H", csum(body)) + body[4:], (dst, 0))
    wait_until = min(deadline, time.monotonic() + 0.5)
    while (left := wait_until - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            pkt, (src, _) = s.recvfrom(2048)
        except (socket.timeout, TimeoutError):
            break
        hl = (pkt[0] & 0x0F) * 4
        typ, _, _, rid, _ = struct.unpack("!BBHHH", pkt[hl:hl + 8])
        if typ == 0 and rid == ident and src == dst:
            sys.exit(0)
sys.exit(1)
"""


@dataclass
class Machine:
    """One host: a network namespace, its addresses (with prefix length), its own data dir."""

    name: str
    netns: str
    interfaces: list[str]  # "192.168.77.10/24", one per leg (eth0, eth1, ...)
    dir: str
    owner: Machines
    _cache_dir: str | None = field(default=None, repr=False)

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    @property
    def address(self) -> str:
        """The first leg's address (the machine's InternalIP as the tests expect it)."""
        return self.addresses[0]

    @property
    def addresses(self) -> list[str]:
        return [i.split("/")[0] for i in self.interfaces]

    @property
    def data_dir(self) -> str:
        return os.path.join(self.dir, "data")

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net={self.netns_path}", "--", *argv]

    def run(self, argv: Sequence[str], *, check: bool = False, timeout: float = 60, input: str | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run to completion inside the machine, text output captured."""
        r = subprocess.run(self._wrap(argv), input=input, capture_output=True, text=True, timeout=timeout,
                           env=_env(env))
        if check and r.returncode != 0:
            raise AssertionError(f"[{self.name}] {shlex.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def spawn(self, argv: Sequence[str], log_path: str | None = None,
              env: Mapping[str, str] | None = None) -> Proc:
        """Start a long-running process inside the machine (own process group, output to `log_path`);
        the Machines teardown stops it."""
        if log_path is None:
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(argv[0]))
            n = sum(1 for p in self.owner.procs if os.path.dirname(p.log_path) == self.dir)
            log_path = os.path.join(self.dir, f"{n:02d}-{base}.log")
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(self._wrap(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=_env(env))
        proc = Proc(argv, popen, log_path)
        self.owner.procs.append(proc)
        return proc

    def kubelite(self, *args: str, wait: str | Callable[[str], object] | None = None, timeout: float = 60,
                 env: Mapping[str, str] | None = None) -> Proc:
        """`kubelite ARGS...` in the machine, its output in <dir>/NN-kubelite-<verb>.log; with `wait`, returns
        once that line/condition shows (see Proc.wait_for), or fails with the log's tail."""
        n = sum(1 for p in self.owner.procs if os.path.dirname(p.log_path) == self.dir)
        verb = re.sub(r"[^A-Za-z0-9_-]", "_", args[0]) if args else "help"
        proc = self.spawn([*kubelite_argv(), *args], os.path.join(self.dir, f"{n:02d}-kubelite-{verb}.log"), env)
        if wait is not None:
            try:
                proc.wait_for(wait, timeout)
            except AssertionError as e:
                raise AssertionError(f"[{self.name}] {e}") from None
        return proc

    def http_get(self, url: str, timeout: float = 5.0) -> str:
        """GET from inside the machine (no proxy, TLS unverified); OSError when it does not answer 2xx, so
        real_node.wait_for counts it as "not yet"."""
        r = self.run([sys.executable, "-c", _PY_HTTP, url, str(timeout)], timeout=timeout + 10)
        if r.returncode != 0:
            raise OSError(f"[{self.name}] GET {url}: {r.stderr.strip()}")
        return r.stdout

    def ping(self, address: str, timeout: float = 3.0) -> bool:
        """Whether `address` answers an ICMP echo from this machine within `timeout`."""
        return self.run([sys.executable, "-c", _PY_PING, address, str(timeout)], timeout=timeout + 10).returncode == 0

    def sysctl(self, key: str, value: str | None = None) -> str:
        """Read (or set) a sysctl of this machine's network namespace, e.g. "net.ipv4.ip_forward"."""
        path = "/proc/sys/" + key.replace(".", "/")
        if value is not None:
            self.run(["sh", "-c", f"echo {shlex.quote(value)} > {path}"], check=True)
        return self.run(["cat", path], check=True).stdout.strip()

    @property
    def cache_dir(self) -> str:
        """kubectl's --cache-dir for this machine: fresh for each run."""
        if self._cache_dir is None:
            self._cache_dir = os.path.join(self.dir, "kube-cache")
        return self._cache_dir


def kubectl(machine: Machine, *args: str, kubeconfig: str, input: str | None = None, check: bool = False,
            timeout: float = 60, cache_dir: str | None = None) -> subprocess.CompletedProcess:
    """The real kubectl inside `machine`'s network namespace."""
    r = machine.run([KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", cache_dir or machine.cache_dir, *args],
                    input=input, timeout=timeout)
    if check and r.returncode != 0:
        logs = "\n".join(f"--- {p.log_path}\n{p.tail(2000)}" for p in machine.owner.procs)
        raise AssertionError(f"[{machine.name}] kubectl {' '.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout}\n{r.stderr}\n{logs}")
    return r


def parse_join_command(text: str) -> list[str]:
    """The arguments after `kubelite join` in what `kubelite init` (or `token create
    --print-join-command`) printed: the last such line."""
    lines = re.findall(JOIN_LINE, text, re.MULTILINE)
    if not lines:
        raise AssertionError(f"no `kubelite join` line in:\n{text[-3000:]}")
    return shlex.split(lines[-1])[2:]


class Machines:
    """Build the machines on enter, remove everything on exit (also after a failure or Ctrl-C).

    hosts: name -> its legs' addresses with prefix length, one leg per segment; each distinct network is a
    segment, a bridge in the switch namespace. gateway: the switch holds each segment's first address and
    the machines' default route points at it (the switch forwards nothing); False leaves no default route.
    router: the machine forwarding between segments (default: the one with legs on several); the others
    reach the other segments through it.
    """

    def __init__(self, hosts: Mapping[str, Sequence[str]] = ONE_SEGMENT, *, gateway: bool = True,
                 router: str | None = None, base_dir: str | None = None, keep_dir: bool = False) -> None:
        if "switch" in hosts:
            raise ValueError("'switch' is the name of the switch namespace")
        self.run_id = secrets.token_hex(3)
        self.prefix = f"{PREFIX}-{self.run_id}"
        self.hosts = {name: list(addrs) for name, addrs in hosts.items()}
        self.gateway = gateway
        self.segments: list[ipaddress.IPv4Network] = []
        for addrs in self.hosts.values():
            for a in addrs:
                net = ipaddress.ip_interface(a).network
                if net not in self.segments:
                    self.segments.append(net)
        multi = [n for n, addrs in self.hosts.items() if len(addrs) > 1]
        self.router = router if router is not None else (multi[0] if len(multi) == 1 else None)
        self._own_base = base_dir is None
        self.base_dir = tempfile.mkdtemp(prefix=f"{self.prefix}-") if base_dir is None else base_dir
        self.keep_dir = keep_dir
        self.machines: dict[str, Machine] = {}
        self.procs: list[Proc] = []
        self.switch = f"{self.prefix}-switch"
        self._made: list[str] = []

    def __getitem__(self, name: str) -> Machine:
        return self.machines[name]

    def __iter__(self):
        return iter(self.machines.values())

    def __enter__(self) -> Machines:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close(raise_errors=exc[0] is None)

    def _pidfile(self) -> str:
        return os.path.join(RUN_DIR, f"{self.run_id}.json")

    def start(self) -> None:
        # the pid file first, so that a concurrent cleanup_stale() never takes our namespaces for leftovers
        atexit.register(self.close)  # an interrupted session still removes what it made
        os.makedirs(RUN_DIR, exist_ok=True)
        with open(self._pidfile(), "w") as f:
            json.dump({"pid": os.getpid(), "start_time": _start_time(os.getpid()),
                       "base_dir": self.base_dir if self._own_base else None}, f)
        self._add_netns(self.switch)
        sw = ("-n", self.switch)
        _ip(*sw, "link", "set", "dev", "lo", "up")
        for i, net in enumerate(self.segments):
            _ip(*sw, "link", "add", f"br{i}", "type", "bridge")
            if self.gateway:
                _ip(*sw, "addr", "add", f"{net[1]}/{net.prefixlen}", "dev", f"br{i}")
            _ip(*sw, "link", "set", "dev", f"br{i}", "up")
        for name, addrs in self.hosts.items():
            ns = f"{self.prefix}-{name}"
            self._add_netns(ns)
            mdir = os.path.join(self.base_dir, name)
            os.makedirs(os.path.join(mdir, "data"), exist_ok=True)
            machine = Machine(name, ns, addrs, mdir, self)
            self.machines[name] = machine
            me = ("-n", ns)
            _ip(*me, "link", "set", "dev", "lo", "up")
            for leg, addr in enumerate(addrs):
                seg = self.segments.index(ipaddress.ip_interface(addr).network)
                peer = f"v{leg}-{name}"[:15]
                _ip(*me, "link", "add", f"eth{leg}", "type", "veth", "peer", "name", peer, "netns", self.switch)
                _ip(*sw, "link", "set", "dev", peer, "master", f"br{seg}")
                _ip(*sw, "link", "set", "dev", peer, "up")
                _ip(*me, "addr", "add", addr, "dev", f"eth{leg}")
                _ip(*me, "link", "set", "dev", f"eth{leg}", "up")
            machine.sysctl("net.ipv4.ip_forward", "1" if name == self.router else "0")
        self._add_routes()

    def _add_netns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._made.append(ns)

    def _add_routes(self) -> None:
        router = self.machines.get(self.router) if self.router else None
        for m in self:
            nets = [ipaddress.ip_interface(a).network for a in m.interfaces]
            if router is not None and m is not router:
                for other in self.segments:
                    if other in nets:
                        continue
                    via = next((ipaddress.ip_interface(a).ip for a in router.interfaces
                                if ipaddress.ip_interface(a).network == nets[0]), None)
                    if via is not None:
                        _ip("-n", m.netns, "route", "add", str(other), "via", str(via))
            if self.gateway:
                _ip("-n", m.netns, "route", "add", "default", "via", str(nets[0][1]))

    def close(self, raise_errors: bool = False) -> None:
        """Stop every process spawned (SIGTERM, then SIGKILL), kill whatever else still lives in the
        machines, delete the namespaces (and with them the veths and bridges), the pid file and temp dir."""
        atexit.unregister(self.close)
        errors = []
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as e:  # teardown goes on whatever one process does
                errors.append(f"stopping {proc.argv}: {e}")
        for ns in sorted(self._made, key=lambda n: n == self.switch):
            if left := _kill_and_reap(_netns_pids(ns)):
                errors.append(f"processes {left} in {ns} would not die")
            r = _ip("netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self._made = [ns for ns in self._made if os.path.exists(f"/run/netns/{ns}")]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._pidfile())
        if self._own_base and not self.keep_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        if errors and raise_errors:
            raise RuntimeError("multinode teardown: " + "; ".join(errors))

    def leftovers(self) -> list[str]:
        """Namespaces of this run that still exist (empty after close)."""
        return [ns for ns in list_netns() if ns.startswith(self.prefix + "-")]

    def logs(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {p.log_path} (rc={p.popen.returncode})\n{p.tail(chars)}" for p in self.procs)


def fixture(name: str, hosts: Mapping[str, Sequence[str]] = ONE_SEGMENT, **kw):
    """A pytest fixture `name` yielding a Machines(hosts, **kw) built in the test's tmp_path; the tails of its
    processes' logs are printed at teardown (pytest shows them when the test failed).

        machines = multinode.fixture("machines")            # at module level of a test file
    """

    @pytest.fixture(name=name)
    def _machines(tmp_path):
        cleanup_stale()
        with Machines(hosts, base_dir=str(tmp_path), **kw) as m:
            try:
                yield m
            finally:
                if m.procs:
                    print(m.logs())

    return _machines
