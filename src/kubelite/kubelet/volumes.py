"""Pod volumes on the node: emptyDir (disk or `medium: Memory` tmpfs), hostPath, configMap, secret,
downwardAPI, projected (serviceAccountToken through the TokenRequest API, configMap, secret, downwardAPI) and
persistentVolumeClaim (bound to a hostPath/local PV).

Each pod's volumes live in `<data dir>/pods/<uid>/volumes/<name>`.  Files of configMap/secret/downwardAPI/
projected volumes are written the way upstream's AtomicWriter does it: a fresh timestamped directory,
`..data` pointing at it (renamed atomically), and one top-level symlink per key into `..data`, so an update
reaches mounted files at once and a reader never sees half of it.  `refresh(pod)` re-writes them (tokens are
renewed at 80% of their lifetime, as the kubelet does).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from ..api.resources import Registry
from ..client import ApiClient, ClientError
from .runtime.oci import Mount, field_value

Obj = dict[str, Any]
_REG = Registry()
CONFIGMAPS = _REG.get("", "v1", "configmaps")
SECRETS = _REG.get("", "v1", "secrets")
PVCS = _REG.get("", "v1", "persistentvolumeclaims")
PVS = _REG.get("", "v1", "persistentvolumes")
SERVICEACCOUNTS = _REG.get("", "v1", "serviceaccounts")


class VolumeError(Exception):
    """FailedMount with upstream-like wording; the pod waits in ContainerCreating and retries."""


def _mode(v: Any, default: int) -> int:
    return int(v) if v is not None else default


def write_atomic(target: str, files: dict[str, tuple[bytes, int]]) -> None:
    """Replace the file set in `target` (key path -> (content, mode)) as upstream's AtomicWriter."""
    os.makedirs(target, exist_ok=True)
    current = os.path.join(target, "..data")
    with contextlib.suppress(OSError):
        old = os.readlink(current)
        if _same(os.path.join(target, old), files):
            return
    ts = os.path.join(target, f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.time_ns() % 10**9}")
    os.makedirs(ts)
    for rel, (data, mode) in files.items():
        path = os.path.join(ts, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
    os.chmod(ts, 0o755)
    tmp = os.path.join(target, "..data_tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(os.path.basename(ts), tmp)
    old_target = None
    with contextlib.suppress(OSError):
        old_target = os.readlink(current)
    os.rename(tmp, current)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = os.path.join(target, top)
        if not os.path.islink(link):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(os.path.join("..data", top), link)
    for entry in os.listdir(target):
        p = os.path.join(target, entry)
        if not entry.startswith("..") and entry not in tops and os.path.islink(p):
            os.unlink(p)
    if old_target and old_target != os.path.basename(ts):
        shutil.rmtree(os.path.join(target, old_target), ignore_errors=True)


def _same(dirpath: str, files: dict[str, tuple[bytes, int]]) -> bool:
    try:
        for rel, (data, _) in files.items():
            with open(os.path.join(dirpath, rel), "rb") as f:
                if f.read() != data:
                    return False
        count = sum(len(fs) for _, _, fs in os.walk(dirpath))
        return count == len(files)
    except OSError:
        return False


def _items(data: dict[str, bytes], items: list[Obj] | None, default_mode: int, source: str,
           optional: bool) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out = {}
    for it in items:
        if it["key"] not in data:
            if optional:
                continue
            raise VolumeError(f"configmap references non-existent config key: {it['key']}" if source == "configmap"
                              else f"references non-existent secret key: {it['key']}")
        out[it["path"]] = (data[it["key"]], _mode(it.get("mode"), default_mode))
    return out


@dataclass
class VolumeManager:
    client: ApiClient
    data_dir: str
    ca_pem: bytes = b""
    node_ip: str = ""
    token_expiry: dict[str, float] = field(default_factory=dict)  # "<uid>/<vol>" -> refresh at
    tmpfs: set[str] = field(default_factory=set)

    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.data_dir, "pods", uid)

    def volume_dir(self, uid: str, name: str) -> str:
        return os.path.join(self.pod_dir(uid), "volumes", name)

    async def _get(self, rt, ns: str, name: str) -> Obj | None:
        try:
            return await self.client.get(rt, ns, name)
        except ClientError as e:
            if e.code == 404:
                return None
            raise

    async def setup(self, pod: Obj) -> dict[str, str]:
        """Prepare every volume of the pod; returns volume name -> host path."""
        uid = pod["metadata"]["uid"]
        paths: dict[str, str] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            paths[vol["name"]] = await self._setup_one(pod, vol)
        os.makedirs(self.pod_dir(uid), exist_ok=True)
        return paths

    async def refresh(self, pod: Obj) -> None:
        """Re-write configMap/secret/downwardAPI/projected volumes (updates reach the files)."""
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            if any(k in vol for k in ("configMap", "secret", "downwardAPI", "projected")):
                with contextlib.suppress(VolumeError, ClientError):
                    await self._setup_one(pod, vol, refresh=True)

    async def _setup_one(self, pod: Obj, vol: Obj, refresh: bool = False) -> str:
        uid, ns = pod["metadata"]["uid"], pod["metadata"].get("namespace", "default")
        name = vol["name"]
        target = self.volume_dir(uid, name)
        if "hostPath" in vol:
            return self._host_path(vol["hostPath"])
        if "emptyDir" in vol:
            if not os.path.isdir(target):
                os.makedirs(target, mode=0o777, exist_ok=True)
                os.chmod(target, 0o777)
                if (vol["emptyDir"] or {}).get("medium") == "Memory":
                    size = (vol["emptyDir"] or {}).get("sizeLimit")
                    opts = "mode=0777" + (f",size={_bytes(size)}" if size else "")
                    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", target], check=True)
                    self.tmpfs.add(target)
            return target
        if "persistentVolumeClaim" in vol:
            return await self._pvc(ns, vol["persistentVolumeClaim"])
        files: dict[str, tuple[bytes, int]] = {}
        if "configMap" in vol:
            files = await self._configmap(ns, vol["configMap"], _mode(vol["configMap"].get("defaultMode"), 0o644))
        elif "secret" in vol:
            files = await self._secret(ns, vol["secret"], _mode(vol["secret"].get("defaultMode"), 0o644))
        elif "downwardAPI" in vol:
            files = self._downward(pod, vol["downwardAPI"].get("items") or [],
                                   _mode(vol["downwardAPI"].get("defaultMode"), 0o644))
        elif "projected" in vol:
            files = await self._projected(pod, name, vol["projected"], refresh)
        else:
            kind = next((k for k in vol if k != "name"), "unknown")
            raise VolumeError(f"volume {name}: unsupported volume type {kind}")
        if files is None:  # token not due
            return target
        write_atomic(target, files)
        return target

    def _host_path(self, hp: Obj) -> str:
        path, typ = hp.get("path", ""), hp.get("type") or ""
        if typ == "DirectoryOrCreate" and not os.path.exists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        elif typ == "FileOrCreate" and not os.path.exists(path):
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            open(path, "a").close()
        elif typ == "Directory" and not os.path.isdir(path):
            raise VolumeError(f"hostPath type check failed: {path} is not a directory")
        elif typ == "File" and not os.path.isfile(path):
            raise VolumeError(f"hostPath type check failed: {path} is not a file")
        elif typ == "Socket" and not os.path.exists(path):
            raise VolumeError(f"hostPath type check failed: {path} is not a socket file")
        return path

    async def _pvc(self, ns: str, ref: Obj) -> str:
        claim = ref.get("claimName", "")
        pvc = await self._get(PVCS, ns, claim)
        if pvc is None:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") not in (None, "Bound"):
            raise VolumeError(f'PersistentVolumeClaim "{claim}" is not bound')
        pv = await self._get(PVS, None, pv_name)
        if pv is None:
            raise VolumeError(f'persistentvolume "{pv_name}" not found')
        spec = pv.get("spec") or {}
        src = spec.get("hostPath") or spec.get("local")
        if not src:
            raise VolumeError(f"persistentvolume {pv_name}: only hostPath and local volumes are supported")
        path = src.get("path", "")
        os.makedirs(path, mode=0o777, exist_ok=True)
        return path

    async def _configmap(self, ns: str, src: Obj, mode: int) -> dict[str, tuple[bytes, int]]:
        cm = await self._get(CONFIGMAPS, ns, src.get("name", ""))
        if cm is None:
            if src.get("optional"):
                return {}
            raise VolumeError(f'configmap "{src.get("name")}" not found')
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return _items(data, src.get("items"), mode, "configmap", bool(src.get("optional")))

    async def _secret(self, ns: str, src: Obj, mode: int) -> dict[str, tuple[bytes, int]]:
        name = src.get("secretName") or src.get("name", "")
        sec = await self._get(SECRETS, ns, name)
        if sec is None:
            if src.get("optional"):
                return {}
            raise VolumeError(f'secret "{name}" not found')
        data = {k: base64.b64decode(v) for k, v in (sec.get("data") or {}).items()}
        return _items(data, src.get("items"), mode, "secret", bool(src.get("optional")))

    def _downward(self, pod: Obj, items: list[Obj], mode: int) -> dict[str, tuple[bytes, int]]:
        from .runtime.oci import _resource_value
        out = {}
        for it in items:
            if "fieldRef" in it:
                value = field_value(pod, it["fieldRef"].get("fieldPath", ""), node_ip=self.node_ip)
            elif "resourceFieldRef" in it:
                value = _resource_value(pod, it["resourceFieldRef"], it["resourceFieldRef"].get("containerName", ""))
            else:
                continue
            out[it["path"]] = (value.encode(), _mode(it.get("mode"), mode))
        return out

    async def _projected(self, pod: Obj, vol_name: str, proj: Obj, refresh: bool) -> dict[str, tuple[bytes, int]]:
        ns, uid = pod["metadata"].get("namespace", "default"), pod["metadata"]["uid"]
        mode = _mode(proj.get("defaultMode"), 0o644)
        key = f"{uid}/{vol_name}"
        files: dict[str, tuple[bytes, int]] = {}
        target = self.volume_dir(uid, vol_name)
        for src in proj.get("sources") or []:
            if "serviceAccountToken" in src:
                t = src["serviceAccountToken"]
                path = t.get("path", "token")
                if refresh and time.time() < self.token_expiry.get(key, 0):
                    with contextlib.suppress(OSError), open(os.path.join(target, path), "rb") as f:
                        files[path] = (f.read(), mode)
                        continue
                token, lifetime = await self._token(pod, t)
                self.token_expiry[key] = time.time() + lifetime * 0.8
                files[path] = (token.encode(), mode)
            elif "configMap" in src:
                c = src["configMap"]
                if c.get("name") == "kube-root-ca.crt" and self.ca_pem:
                    cm = await self._get(CONFIGMAPS, ns, "kube-root-ca.crt")
                    if cm is None:  # the publisher has not reached this namespace yet: our own CA is the same
                        files.update(_items({"ca.crt": self.ca_pem}, c.get("items"), mode, "configmap", True))
                        continue
                files.update(await self._configmap(ns, c, mode))
            elif "secret" in src:
                files.update(await self._secret(ns, src["secret"], mode))
            elif "downwardAPI" in src:
                files.update(self._downward(pod, src["downwardAPI"].get("items") or [], mode))
        return files

    async def _token(self, pod: Obj, src: Obj) -> tuple[str, float]:
        ns = pod["metadata"].get("namespace", "default")
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        seconds = int(src.get("expirationSeconds") or 3607)
        body: Obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"expirationSeconds": seconds,
                              "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                                 "uid": pod["metadata"]["uid"]}}}
        if src.get("audience"):
            body["spec"]["audiences"] = [src["audience"]]
        try:
            out = await self.client.create_subresource(SERVICEACCOUNTS, ns, sa, "token", body)
        except ClientError as e:
            raise VolumeError(f'failed to fetch token: {e}') from e
        return out["status"]["token"], float(seconds)

    def mounts_for(self, pod: Obj, container: Obj, paths: dict[str, str]) -> list[Mount]:
        """The container's volumeMounts as bind mounts (subPath and readOnly honoured)."""
        vols = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        out = []
        for vm in container.get("volumeMounts") or []:
            src = paths.get(vm["name"])
            if src is None:
                raise VolumeError(f"volume {vm['name']} not found")
            sub = vm.get("subPath") or ""
            if sub:
                full = os.path.normpath(os.path.join(src, sub))
                if not full.startswith(os.path.normpath(src)):
                    raise VolumeError(f"subPath {sub} escapes the volume")
                if not os.path.exists(full):
                    os.makedirs(full, exist_ok=True)
                src = os.path.realpath(full) if os.path.islink(full) else full
            vol = vols.get(vm["name"]) or {}
            ro = bool(vm.get("readOnly")) or any(k in vol for k in ("configMap", "secret", "downwardAPI", "projected"))
            out.append(Mount(vm["mountPath"], src, ro))
        return out

    async def teardown(self, uid: str) -> None:
        base = os.path.join(self.pod_dir(uid), "volumes")
        if os.path.isdir(base):
            for name in os.listdir(base):
                p = os.path.join(base, name)
                if p in self.tmpfs or os.path.ismount(p):
                    subprocess.run(["umount", "-l", p], check=False, capture_output=True)
                    self.tmpfs.discard(p)
        for k in [k for k in self.token_expiry if k.startswith(uid + "/")]:
            del self.token_expiry[k]
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)


def _bytes(q: str) -> int:
    from ..api.quantity import parse_quantity
    return int(parse_quantity(str(q)) or 0)
