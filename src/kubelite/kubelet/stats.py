"""The kubelet's `/stats/summary` (stats/v1alpha1 Summary): CPU and memory of every container from its cgroup
(v1 cpuacct/memory hierarchies, or the v2 unified one), pod sums, and node totals from /proc.

CPU usage rates (`usageNanoCores`) need two samples; the last sample of every cgroup is kept, and a cgroup seen
for the first time (or whose sample is older than a minute) is sampled twice 100 ms apart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
CGROUP_ROOT = "/sys/fs/cgroup"
_FRESH = 60.0


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


def _unified() -> bool:
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def cgroup_cpu_ns(path: str) -> int | None:
    """Cumulative CPU time of a cgroup in nanoseconds."""
    if _unified():
        usec = _kv(_read(f"{CGROUP_ROOT}{path}/cpu.stat")).get("usage_usec")
        return usec * 1000 if usec is not None else None
    raw = _read(f"{CGROUP_ROOT}/cpuacct{path}/cpuacct.usage")
    return int(raw) if raw and raw.strip().isdigit() else None


def cgroup_memory(path: str) -> Obj | None:
    """usageBytes, workingSetBytes (usage minus inactive file pages, as cAdvisor), rssBytes, page faults."""
    if _unified():
        raw, stat = _read(f"{CGROUP_ROOT}{path}/memory.current"), _kv(_read(f"{CGROUP_ROOT}{path}/memory.stat"))
        inactive, rss = stat.get("inactive_file", 0), stat.get("anon", 0)
    else:
        base = f"{CGROUP_ROOT}/memory{path}"
        raw, stat = _read(f"{base}/memory.usage_in_bytes"), _kv(_read(f"{base}/memory.stat"))
        inactive, rss = stat.get("total_inactive_file", 0), stat.get("total_rss", 0)
    if raw is None or not raw.strip().isdigit():
        return None
    usage = int(raw)
    return {"usageBytes": usage, "workingSetBytes": max(0, usage - inactive), "rssBytes": rss,
            "pageFaults": stat.get("total_pgfault", stat.get("pgfault", 0)),
            "majorPageFaults": stat.get("total_pgmajfault", stat.get("pgmajfault", 0))}


def host_cpu_ns() -> int:
    """CPU time the host spent busy (everything but idle and iowait) since boot, from /proc/stat."""
    line = (_read("/proc/stat") or "cpu 0").splitlines()[0].split()
    ticks = [int(x) for x in line[1:9]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def host_memory() -> Obj:
    info = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        k, _, v = line.partition(":")
        parts = v.split()
        if parts and parts[0].isdigit():
            info[k] = int(parts[0]) * 1024
    total, available = info.get("MemTotal", 0), info.get("MemAvailable", info.get("MemFree", 0))
    usage = total - info.get("MemFree", 0)
    working = total - available
    return {"availableBytes": available, "usageBytes": usage, "workingSetBytes": working,
            "rssBytes": info.get("AnonPages", 0), "pageFaults": 0, "majorPageFaults": 0}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StatsProvider:
    """Keeps the previous CPU sample of every cgroup (and of the host) to turn counters into rates."""

    samples: dict[str, tuple[float, int]] = field(default_factory=dict)

    def _rate(self, key: str, now: float, total: int) -> int | None:
        prev = self.samples.get(key)
        self.samples[key] = (now, total)
        if prev is None or now - prev[0] <= 0 or now - prev[0] > _FRESH:
            return None
        return max(0, int((total - prev[1]) / (now - prev[0])))

    def _cpu(self, key: str, total: int | None, now: float) -> Obj | None:
        if total is None:
            return None
        out: Obj = {"time": _now(), "usageCoreNanoSeconds": total}
        rate = self._rate(key, now, total)
        if rate is not None:
            out["usageNanoCores"] = rate
        return out

    def _stale(self, keys: list[str]) -> bool:
        now = time.monotonic()
        return any(k not in self.samples or now - self.samples[k][0] > _FRESH for k in keys)

    async def summary(self, node_name: str, boot_time: float, pods: list[Any]) -> Obj:
        """`pods`: the runtime's RuncPod objects (name, namespace, uid, rt.start_time, instances)."""
        keys = ["/"] + [inst.cgroups_path for p in pods for inst in p.instances.values() if not inst.exited]
        if self._stale(keys):
            self._collect(node_name, boot_time, pods)  # primes the counters
            await asyncio.sleep(0.1)
        return self._collect(node_name, boot_time, pods)

    def _collect(self, node_name: str, boot_time: float, pods: list[Any]) -> Obj:
        now = time.monotonic()
        mem = host_memory()
        mem["time"] = _now()
        node: Obj = {"nodeName": node_name, "startTime": _ts(boot_time),
                     "cpu": self._cpu("/", host_cpu_ns(), now), "memory": mem, "systemContainers": []}
        out_pods = []
        for p in pods:
            containers = []
            pod_cpu_ns, pod_rate, pod_mem = 0, 0, {"usageBytes": 0, "workingSetBytes": 0, "rssBytes": 0,
                                                   "pageFaults": 0, "majorPageFaults": 0}
            for name, inst in list(p.instances.items()):
                if inst.exited:
                    continue
                cpu = self._cpu(inst.cgroups_path, cgroup_cpu_ns(inst.cgroups_path), now)
                memory = cgroup_memory(inst.cgroups_path)
                if cpu is None and memory is None:
                    continue
                c: Obj = {"name": name, "startTime": _ts(inst.started_at)}
                if cpu is not None:
                    c["cpu"] = cpu
                    pod_cpu_ns += cpu["usageCoreNanoSeconds"]
                    pod_rate += cpu.get("usageNanoCores", 0)
                if memory is not None:
                    c["memory"] = {"time": _now(), **memory}
                    for k in pod_mem:
                        pod_mem[k] += memory[k]
                containers.append(c)
            entry: Obj = {"podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                          "startTime": _ts(p.rt.start_time), "containers": containers}
            if containers:
                entry["cpu"] = {"time": _now(), "usageNanoCores": pod_rate, "usageCoreNanoSeconds": pod_cpu_ns}
                entry["memory"] = {"time": _now(), **pod_mem}
            out_pods.append(entry)
        return {"node": node, "pods": out_pods}


def boot_time() -> float:
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return time.time()
