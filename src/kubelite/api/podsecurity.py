"""The Pod Security Standards (baseline, restricted) as pure functions over plain pod dicts.

Mirrors upstream's pod-security-admission policy package: every check has an ID, a level and versioned
implementations; a check at `restricted` may override a baseline check (restrictedVolumes replaces
hostPathVolumes, capabilities_restricted replaces capabilities_baseline, seccompProfile_restricted replaces
seccompProfile_baseline). Results are ordered as upstream orders them (baseline check IDs sorted, then
restricted check IDs sorted), so the messages match word for word, e.g.
`privileged (container "c" must not set securityContext.privileged=true)`.

Versions are minor numbers of v1.x; `None` is "latest". We serve v1.33, so the newest policy is v1.33 (checks
introduced later upstream, such as hostProbesAndHostLifecycle at v1.34, are not part of it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
MAX_MINOR = 33  # the policy version "latest" stands for

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LEVEL_LABEL = LABEL_PREFIX + "enforce"
ENFORCE_VERSION_LABEL = LABEL_PREFIX + "enforce-version"
AUDIT_LEVEL_LABEL = LABEL_PREFIX + "audit"
AUDIT_VERSION_LABEL = LABEL_PREFIX + "audit-version"
WARN_LEVEL_LABEL = LABEL_PREFIX + "warn"
WARN_VERSION_LABEL = LABEL_PREFIX + "warn-version"
ENFORCED_POLICY_ANNOTATION = LABEL_PREFIX + "enforce-policy"
AUDIT_VIOLATIONS_ANNOTATION = LABEL_PREFIX + "audit-violations"
EXEMPT_ANNOTATION = LABEL_PREFIX + "exempt"


# ---------------------------------------------------------------- levels, versions, policies


@dataclass(frozen=True)
class LevelVersion:
    level: str = PRIVILEGED
    version: int | None = None  # minor of v1.x; None = latest

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.version is None else f'v1.{self.version}'}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion()
    audit: LevelVersion = LevelVersion()
    warn: LevelVersion = LevelVersion()


@dataclass(frozen=True)
class LabelError:
    label: str
    value: str
    message: str

    @property
    def field(self) -> str:
        return f"metadata.labels[{self.label}]"


_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")


def parse_level(value: str) -> tuple[str, str | None]:
    """(level, error); an unknown level evaluates as restricted (fail closed)."""
    if value in LEVELS:
        return value, None
    return RESTRICTED, "must be one of " + ", ".join(LEVELS)


def parse_version(value: str) -> tuple[int | None, str | None]:
    if value == "latest":
        return None, None
    m = _VERSION_RE.match(value)
    if not m:
        return None, 'must be "latest" or "v1.x"'
    return int(m.group(1)), None


def parse_policy(text: str) -> LevelVersion:
    """`baseline:v1.30` / `restricted` / `privileged:latest` (configuration defaults)."""
    level_text, _, version_text = text.partition(":")
    level, err = parse_level(level_text)
    if err:
        raise ValueError(f"invalid Pod Security level {level_text!r}: {err}")
    version, err = parse_version(version_text or "latest")
    if err:
        raise ValueError(f"invalid Pod Security version {version_text!r}: {err}")
    return LevelVersion(level, version)


def policy_to_evaluate(labels: dict[str, str] | None, defaults: Policy = Policy()) -> tuple[Policy, list[LabelError]]:
    """The namespace's policy from its labels, falling back to `defaults`. A label that cannot be parsed
    yields restricted/latest for enforce (fail closed) and privileged for audit/warn (fail open)."""
    labels = labels or {}
    errs: list[LabelError] = []
    parts = {"enforce": defaults.enforce, "audit": defaults.audit, "warn": defaults.warn}
    for mode, level_label, version_label in (("enforce", ENFORCE_LEVEL_LABEL, ENFORCE_VERSION_LABEL),
                                              ("audit", AUDIT_LEVEL_LABEL, AUDIT_VERSION_LABEL),
                                              ("warn", WARN_LEVEL_LABEL, WARN_VERSION_LABEL)):
        lv = parts[mode]
        level, version = lv.level, lv.version
        if level_label in labels:
            level, err = parse_level(labels[level_label])
            if err:
                errs.append(LabelError(level_label, labels[level_label], err))
                if mode != "enforce":
                    level = PRIVILEGED
        if version_label in labels:
            version, err = parse_version(labels[version_label])
            if err:
                errs.append(LabelError(version_label, labels[version_label], err))
        parts[mode] = LevelVersion(level, version)
    # an explicit, valid enforce level stricter than warn also warns, unless warn is labelled itself
    enforce_ok = ENFORCE_LEVEL_LABEL in labels and labels[ENFORCE_LEVEL_LABEL] in LEVELS
    if enforce_ok and WARN_LEVEL_LABEL not in labels and \
            compare_levels(parts["enforce"].level, parts["warn"].level) > 0:
        version = parts["warn"].version if WARN_VERSION_LABEL in labels else parts["enforce"].version
        parts["warn"] = LevelVersion(parts["enforce"].level, version)
    return Policy(**parts), errs


def compare_levels(a: str, b: str) -> int:
    """-1 if a is less strict than b, 0 if equal, 1 if stricter."""
    order = {PRIVILEGED: 0, BASELINE: 1, RESTRICTED: 2}
    return (order.get(a, 0) > order.get(b, 0)) - (order.get(a, 0) < order.get(b, 0))


# ---------------------------------------------------------------- helpers shared by the checks


@dataclass(frozen=True)
class CheckResult:
    reason: str
    detail: str


def go_quote(s: str) -> str:
    """Go's %q for the strings that appear in these messages."""
    return json.dumps(s, ensure_ascii=False)


def join_quote(items) -> str:
    return ", ".join(go_quote(str(i)) for i in items)


def pluralize(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, then ephemeral containers, as upstream visits them."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def _sc(obj: Obj) -> Obj:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else {}


def _sub(obj: Obj, name: str) -> Obj | None:
    value = obj.get(name)
    return value if isinstance(value, dict) else None


def _names(items: list[Obj]) -> list[str]:
    return [str(c.get("name", "")) for c in items]


def _setters(pod: bool, bad_containers: list[str]) -> list[str]:
    out = ["pod"] if pod else []
    if bad_containers:
        out.append(f"{pluralize('container', 'containers', len(bad_containers))} {join_quote(bad_containers)}")
    return out


CheckFn = Callable[[Obj, Obj], CheckResult | None]


# ---------------------------------------------------------------- baseline checks


def host_namespaces(meta: Obj, spec: Obj) -> CheckResult | None:
    used = [f"{name}=true" for name in ("hostNetwork", "hostPID", "hostIPC") if spec.get(name) is True]
    if used:
        return CheckResult("host namespaces", ", ".join(used))
    return None


def privileged(meta: Obj, spec: Obj) -> CheckResult | None:
    bad = [c for c in containers(spec) if _sc(c).get("privileged") is True]
    if bad:
        names = _names(bad)
        return CheckResult("privileged", f"{pluralize('container', 'containers', len(names))} {join_quote(names)} "
                                         "must not set securityContext.privileged=true")
    return None


_DEFAULT_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        capabilities = _sub(_sc(c), "capabilities")
        if capabilities is None:
            continue
        extra = [str(x) for x in capabilities.get("add") or () if str(x) not in _DEFAULT_CAPABILITIES]
        if extra:
            bad.append(str(c.get("name", "")))
            caps.update(extra)
    if bad:
        return CheckResult("non-default capabilities",
                           f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)} must not include "
                           f"{join_quote(sorted(caps))} in securityContext.capabilities.add")
    return None


def host_path_volumes(meta: Obj, spec: Obj) -> CheckResult | None:
    bad = [str(v.get("name", "")) for v in spec.get("volumes") or () if isinstance(v, dict)
           and v.get("hostPath") is not None]
    if bad:
        return CheckResult("hostPath volumes", f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)}")
    return None


def host_ports(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    ports: set[str] = set()
    for c in containers(spec):
        used = [str(p.get("hostPort")) for p in c.get("ports") or () if isinstance(p, dict) and p.get("hostPort")]
        if used:
            bad.append(str(c.get("name", "")))
            ports.update(used)
    if bad:
        return CheckResult("hostPort", f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)} "
                                       f"{pluralize('uses', 'use', len(bad))} "
                                       f"{pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")
    return None


_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_type_ok(profile: Obj | None) -> bool:
    return profile is None or profile.get("type") in ("RuntimeDefault", "Localhost")


def app_armor_profile(meta: Obj, spec: Obj) -> CheckResult | None:
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = _sub(_sc(spec), "appArmorProfile")
    if not _apparmor_type_ok(pod_profile):
        setters.append("pod")
        values.add(str(pod_profile.get("type", "")))  # type: ignore[union-attr]
    bad_containers = []
    for c in containers(spec):
        profile = _sub(_sc(c), "appArmorProfile")
        if not _apparmor_type_ok(profile):
            bad_containers.append(str(c.get("name", "")))
            values.add(str(profile.get("type", "")))  # type: ignore[union-attr]
    if bad_containers:
        setters.append(f"{pluralize('container', 'containers', len(bad_containers))} {join_quote(bad_containers)}")
    value_list = sorted(values)
    bad_annotations = sorted(
        f"{k}={go_quote(str(v))}" for k, v in (meta.get("annotations") or {}).items()
        if k.startswith(_APPARMOR_ANNOTATION_PREFIX) and v and v != "runtime/default"
        and not str(v).startswith("localhost/"))
    if bad_annotations:
        value_list += bad_annotations
        setters.append(pluralize("annotation", "annotations", len(bad_annotations)))
    if setters:
        return CheckResult(pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(value_list)),
                           f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(value_list)}")
    return None


_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> CheckResult | None:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Obj) -> bool:
            ok = True
            if str(opts.get("type") or "") not in allowed:
                bad_types.add(str(opts.get("type") or ""))
                ok = False
            for key in ("user", "role"):
                if opts.get(key):
                    flags[key] = True
                    ok = False
            return ok

        pod_opts = _sub(_sc(spec), "seLinuxOptions")
        pod_bad = pod_opts is not None and not valid(pod_opts)
        bad_containers = []
        for c in containers(spec):
            opts = _sub(_sc(c), "seLinuxOptions")
            if opts is not None and not valid(opts):
                bad_containers.append(str(c.get("name", "")))
        setters = _setters(pod_bad, bad_containers)
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f"{pluralize('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
        return CheckResult("seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                                             f"{'; '.join(data)}")
    return check


def proc_mount(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in containers(spec):
        value = _sc(c).get("procMount")
        if value is not None and value != "Default":
            bad.append(str(c.get("name", "")))
            kinds.add(str(value))
    if bad:
        return CheckResult("procMount", f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)} must not "
                                        f"set securityContext.procMount to {join_quote(sorted(kinds))}")
    return None


def _seccomp_ok(profile: Obj) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def seccomp_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult | None:
    """Before v1.19 seccomp was set by annotations."""
    annotations = meta.get("annotations") or {}

    def ok(v: str) -> bool:
        return v in ("runtime/default", "docker/default") or v.startswith("localhost/")

    bad = set()
    if _SECCOMP_POD_ANNOTATION in annotations and not ok(str(annotations[_SECCOMP_POD_ANNOTATION])):
        bad.add(f"{_SECCOMP_POD_ANNOTATION}={go_quote(str(annotations[_SECCOMP_POD_ANNOTATION]))}")
    for c in containers(spec):
        key = _SECCOMP_CONTAINER_PREFIX + str(c.get("name", ""))
        if key in annotations and not ok(str(annotations[key])):
            bad.add(f"{key}={go_quote(str(annotations[key]))}")
    if bad:
        return CheckResult("seccompProfile", f"forbidden {pluralize('annotation', 'annotations', len(bad))} "
                                             f"{', '.join(sorted(bad))}")
    return None


def _explicit_seccomp(spec: Obj) -> tuple[list[str], set[str], bool]:
    """(setters with a bad explicit type, the bad types, pod sets a valid profile)."""
    values: set[str] = set()
    pod_profile = _sub(_sc(spec), "seccompProfile")
    pod_bad = pod_profile is not None and not _seccomp_ok(pod_profile)
    if pod_bad:
        values.add(str(pod_profile.get("type", "")))  # type: ignore[union-attr]
    bad_containers = []
    for c in containers(spec):
        profile = _sub(_sc(c), "seccompProfile")
        if profile is not None and not _seccomp_ok(profile):
            bad_containers.append(str(c.get("name", "")))
            values.add(str(profile.get("type", "")))
    return _setters(pod_bad, bad_containers), values, pod_profile is not None and not pod_bad


def seccomp_baseline_1_19(meta: Obj, spec: Obj) -> CheckResult | None:
    setters, values, _ = _explicit_seccomp(spec)
    if setters:
        return CheckResult("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile."
                                             f"type to {join_quote(sorted(values))}")
    return None


_SAFE_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                               "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
_SAFE_SYSCTLS_1_27 = _SAFE_SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SAFE_SYSCTLS_1_29 = _SAFE_SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                          "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SAFE_SYSCTLS_1_32 = _SAFE_SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> CheckResult | None:
        bad = [str(s.get("name", "")) for s in _sc(spec).get("sysctls") or () if isinstance(s, dict)
               and str(s.get("name", "")) not in allowed]
        if bad:
            return CheckResult("forbidden sysctls", ", ".join(bad))
        return None
    return check


def windows_host_process(meta: Obj, spec: Obj) -> CheckResult | None:
    def host_process(sc: Obj) -> bool:
        opts = _sub(sc, "windowsOptions")
        return opts is not None and opts.get("hostProcess") is True

    bad = [str(c.get("name", "")) for c in containers(spec) if host_process(_sc(c))]
    setters = _setters(host_process(_sc(spec)), bad)
    if setters:
        return CheckResult("hostProcess", f"{' and '.join(setters)} must not set "
                                          "securityContext.windowsOptions.hostProcess=true")
    return None


# ---------------------------------------------------------------- restricted checks


_ALLOWED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret", "image")
_RESTRICTED_VOLUME_TYPES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
                            "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
                            "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
                            "scaleIO", "storageos")


def restricted_volumes(meta: Obj, spec: Obj) -> CheckResult | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for v in spec.get("volumes") or ():
        if not isinstance(v, dict) or any(v.get(k) is not None for k in _ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(str(v.get("name", "")))
        kinds.add(next((k for k in _RESTRICTED_VOLUME_TYPES if v.get(k) is not None), "unknown"))
    if bad:
        return CheckResult("restricted volume types",
                           f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)} "
                           f"{pluralize('uses', 'use', len(bad))} "
                           f"{pluralize('restricted volume type', 'restricted volume types', len(kinds))} "
                           f"{join_quote(sorted(kinds))}")
    return None


def allow_privilege_escalation(meta: Obj, spec: Obj) -> CheckResult | None:
    bad = [str(c.get("name", "")) for c in containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return CheckResult("allowPrivilegeEscalation != false",
                           f"{pluralize('container', 'containers', len(bad))} {join_quote(bad)} must set "
                           "securityContext.allowPrivilegeEscalation=false")
    return None


def run_as_non_root(meta: Obj, spec: Obj) -> CheckResult | None:
    pod_value = _sc(spec).get("runAsNonRoot")
    pod_ok = pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is not None:
            if value is not True:
                explicit.append(str(c.get("name", "")))
        elif not pod_ok:
            implicit.append(str(c.get("name", "")))
    setters = _setters(pod_value is not None and pod_value is not True, explicit)
    if setters:
        return CheckResult("runAsNonRoot != true",
                           f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return CheckResult("runAsNonRoot != true",
                           f"pod or {pluralize('container', 'containers', len(implicit))} {join_quote(implicit)} "
                           "must set securityContext.runAsNonRoot=true")
    return None


def run_as_user(meta: Obj, spec: Obj) -> CheckResult | None:
    def zero(sc: Obj) -> bool:
        value = sc.get("runAsUser")
        return value is not None and value == 0 and not isinstance(value, bool)

    bad = [str(c.get("name", "")) for c in containers(spec) if zero(_sc(c))]
    setters = _setters(zero(_sc(spec)), bad)
    if setters:
        return CheckResult("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")
    return None


def seccomp_restricted(meta: Obj, spec: Obj) -> CheckResult | None:
    setters, values, pod_set = _explicit_seccomp(spec)
    if setters:
        return CheckResult("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile."
                                             f"type to {join_quote(sorted(values))}")
    implicit = [str(c.get("name", "")) for c in containers(spec) if _sub(_sc(c), "seccompProfile") is None]
    if implicit and not pod_set:
        return CheckResult("seccompProfile",
                           f"pod or {pluralize('container', 'containers', len(implicit))} {join_quote(implicit)} "
                           'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
    return None


def capabilities_restricted(meta: Obj, spec: Obj) -> CheckResult | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        name = str(c.get("name", ""))
        capabilities = _sub(_sc(c), "capabilities")
        if capabilities is None:
            missing_drop.append(name)
            continue
        if "ALL" not in [str(x) for x in capabilities.get("drop") or ()]:
            missing_drop.append(name)
        extra = [str(x) for x in capabilities.get("add") or () if str(x) != "NET_BIND_SERVICE"]
        if extra:
            adding.append(name)
            caps.update(extra)
    details = []
    if missing_drop:
        details.append(f"{pluralize('container', 'containers', len(missing_drop))} {join_quote(missing_drop)} "
                       'must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{pluralize('container', 'containers', len(adding))} {join_quote(adding)} must not include "
                       f"{join_quote(sorted(caps))} in securityContext.capabilities.add")
    if details:
        return CheckResult("unrestricted capabilities", "; ".join(details))
    return None


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class VersionedCheck:
    minimum: int  # minor version this implementation starts at
    fn: CheckFn
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    versions: tuple[VersionedCheck, ...] = field(default_factory=tuple)

    def at(self, minor: int) -> VersionedCheck | None:
        found = None
        for v in self.versions:
            if v.minimum <= minor:
                found = v
        return found


CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, (VersionedCheck(0, app_armor_profile),)),
    Check("capabilities_baseline", BASELINE, (VersionedCheck(0, capabilities_baseline),)),
    Check("hostNamespaces", BASELINE, (VersionedCheck(0, host_namespaces),)),
    Check("hostPathVolumes", BASELINE, (VersionedCheck(0, host_path_volumes),)),
    Check("hostPorts", BASELINE, (VersionedCheck(0, host_ports),)),
    Check("privileged", BASELINE, (VersionedCheck(0, privileged),)),
    Check("procMount", BASELINE, (VersionedCheck(0, proc_mount),)),
    Check("seLinuxOptions", BASELINE, (VersionedCheck(0, _se_linux(_SELINUX_TYPES_1_0)),
                                       VersionedCheck(31, _se_linux(_SELINUX_TYPES_1_31)))),
    Check("seccompProfile_baseline", BASELINE, (VersionedCheck(0, seccomp_baseline_1_0),
                                                VersionedCheck(19, seccomp_baseline_1_19))),
    Check("sysctls", BASELINE, (VersionedCheck(0, _sysctls(_SAFE_SYSCTLS_1_0)),
                                VersionedCheck(27, _sysctls(_SAFE_SYSCTLS_1_27)),
                                VersionedCheck(29, _sysctls(_SAFE_SYSCTLS_1_29)),
                                VersionedCheck(32, _sysctls(_SAFE_SYSCTLS_1_32)))),
    Check("windowsHostProcess", BASELINE, (VersionedCheck(0, windows_host_process),)),
    Check("allowPrivilegeEscalation", RESTRICTED, (VersionedCheck(8, allow_privilege_escalation),)),
    Check("capabilities_restricted", RESTRICTED, (VersionedCheck(22, capabilities_restricted,
                                                                 ("capabilities_baseline",)),)),
    Check("restrictedVolumes", RESTRICTED, (VersionedCheck(0, restricted_volumes, ("hostPathVolumes",)),)),
    Check("runAsNonRoot", RESTRICTED, (VersionedCheck(0, run_as_non_root),)),
    Check("runAsUser", RESTRICTED, (VersionedCheck(23, run_as_user),)),
    Check("seccompProfile_restricted", RESTRICTED, (VersionedCheck(19, seccomp_restricted,
                                                                   ("seccompProfile_baseline",)),)),
)

_ORDERED = sorted((c for c in CHECKS if c.level == BASELINE), key=lambda c: c.id) + \
    sorted((c for c in CHECKS if c.level == RESTRICTED), key=lambda c: c.id)
_CACHE: dict[tuple[str, int], list[tuple[str, CheckFn]]] = {}


def checks_for(level: str, version: int | None, max_minor: int = MAX_MINOR) -> list[tuple[str, CheckFn]]:
    """(check ID, function) in evaluation order for a level and policy version."""
    minor = max_minor if version is None or version > max_minor else version
    key = (level, minor)
    if key in _CACHE:
        return _CACHE[key]
    chosen: list[tuple[str, VersionedCheck]] = []
    if level in (BASELINE, RESTRICTED):
        for check in _ORDERED:
            if check.level == RESTRICTED and level != RESTRICTED:
                continue
            impl = check.at(minor)
            if impl is not None:
                chosen.append((check.id, impl))
    overridden = {o for _, impl in chosen for o in impl.overrides} if level == RESTRICTED else set()
    result = [(cid, impl.fn) for cid, impl in chosen if cid not in overridden]
    _CACHE[key] = result
    return result


def evaluate_pod(lv: LevelVersion, meta: Obj | None, spec: Obj | None) -> list[CheckResult]:
    """The violations of a pod (or pod template) against a level and version; empty when allowed."""
    if lv.level == PRIVILEGED:
        return []
    meta = meta if isinstance(meta, dict) else {}
    spec = spec if isinstance(spec, dict) else {}
    out = []
    for _, fn in checks_for(lv.level, lv.version):
        result = fn(meta, spec)
        if result is not None:
            out.append(result)
    return out


def forbidden_detail(results: list[CheckResult]) -> str:
    """`reason (detail), reason (detail)` as upstream's AggregateCheckResult.ForbiddenDetail."""
    return ", ".join(f"{r.reason} ({r.detail})" if r.detail else r.reason for r in results)


def forbidden_reason(results: list[CheckResult]) -> str:
    return ", ".join(r.reason for r in results)


# ---------------------------------------------------------------- pod specs inside workload objects

# (group, resource) → path from the object to its PodTemplateSpec; pods are evaluated directly.
POD_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


def extract_pod_spec(group: str, resource: str, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of a pod or of the pod template a workload object carries; None without one."""
    if (group, resource) == ("", "pods"):
        return obj.get("metadata") or {}, obj.get("spec") or {}
    path = POD_TEMPLATE_PATHS.get((group, resource))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node.get("metadata") or {}, node.get("spec") or {}
