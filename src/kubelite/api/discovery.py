"""Discovery documents: /api, /apis, /api/v1, /apis/<g>[/<v>], aggregated discovery and /version.

Everything is computed from a `Registry`; the API server caches the results and keys them on
`discovery_hash(registry)`, which changes whenever the set of served types changes (CRDs).
"""

from __future__ import annotations

import base64
import hashlib
import platform
import re
from typing import Any

from kubelite.api.resources import Registry, ResourceType, Subresource

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
_AGGREGATED = {"v2": AGGREGATED_V2, "v2beta1": AGGREGATED_V2BETA1}

# The patch release and build we claim to be; kubectl only looks at major/minor.
PATCH_RELEASE = "1"
GIT_COMMIT = "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828"
BUILD_DATE = "2025-05-15T08:19:08Z"
GO_VERSION = "go1.24.2"


def storage_version_hash(group: str, version: str, kind: str) -> str:
    """Upstream's hash: the first 8 bytes of sha256("group/version/kind"), base64."""
    digest = hashlib.sha256(f"{group}/{version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def discovery_hash(registry: Registry) -> str:
    """A fingerprint of everything discovery publishes; use it as the cache key and ETag."""
    h = hashlib.sha256()
    for rt in registry:
        h.update(repr((rt.group, rt.version, rt.resource, rt.kind, rt.namespaced, rt.short_names,
                       rt.categories, rt.verbs, rt.subresources)).encode())
    return h.hexdigest()[:32].upper()


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """Sort key putting versions in upstream's preference order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > other."""
    m = _KUBE_VERSION.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


def versions_of(registry: Registry, group: str) -> list[str]:
    versions = {rt.version for rt in registry if rt.group == group}
    return sorted(versions, key=version_priority)


def _gv(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _sorted_types(registry: Registry, group: str, version: str) -> list[ResourceType]:
    return sorted(registry.in_group_version(group, version), key=lambda rt: rt.resource)


def _sub_gvk(rt: ResourceType, sub: Subresource) -> tuple[str, str, str]:
    """(group, version, kind) of a subresource's body; group/version empty when they are the parent's."""
    group, version = sub.group, sub.version
    if (group, version) == (rt.group, rt.version):
        group = version = ""
    return group, version, sub.kind or rt.kind


# --- /version ---------------------------------------------------------------------------------


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"linux/{arch}"


def version_info(minor: str = "33") -> dict[str, Any]:
    """`/version` as kube-apiserver 1.33 reports it (emulation = binary, min compatibility = one minor back)."""
    return {
        "major": "1",
        "minor": minor,
        "emulationMajor": "1",
        "emulationMinor": minor,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": str(max(int(minor) - 1, 0)) if minor.isdigit() else minor,
        "gitVersion": f"v1.{minor}.{PATCH_RELEASE}",
        "gitCommit": GIT_COMMIT,
        "gitTreeState": "clean",
        "buildDate": BUILD_DATE,
        "goVersion": GO_VERSION,
        "compiler": "gc",
        "platform": _platform(),
    }


# --- legacy discovery -------------------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    """`/api`: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _legacy_entries(rt: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rt.resource,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    main["storageVersionHash"] = storage_version_hash(rt.group, rt.version, rt.kind)
    entries = [main]
    for sub in sorted(rt.subresources, key=lambda s: s.name):
        group, version, kind = _sub_gvk(rt, sub)
        entry: dict[str, Any] = {"name": f"{rt.resource}/{sub.name}", "singularName": "",
                                 "namespaced": rt.namespaced}
        if group or version:
            entry["group"] = group
            entry["version"] = version
        entry["kind"] = kind
        entry["verbs"] = list(sub.verbs)
        entries.append(entry)
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """`/api/v1` or `/apis/<group>/<version>`: APIResourceList, subresources as `pods/log` entries."""
    types = _sorted_types(registry, group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        resources.extend(_legacy_entries(rt))
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": _gv(group, version),
            "resources": resources}


def _group_entry(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = versions_of(registry, group)
    if not versions:
        return None
    listed = [{"groupVersion": _gv(group, v), "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    """`/apis`: every named group with its versions, preferred first."""
    groups = [g for g in (_group_entry(registry, name) for name, _ in registry.groups()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    """`/apis/<group>`."""
    if not group:
        return None
    entry = _group_entry(registry, group)
    if entry is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **entry}


# --- aggregated discovery ---------------------------------------------------------------------


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resource": rt.resource,
        # Upstream leaves group/version empty when they are the group-version being listed.
        "responseKind": {"group": "", "version": "", "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        res["shortNames"] = list(rt.short_names)
    if rt.categories:
        res["categories"] = list(rt.categories)
    subs = []
    for sub in sorted(rt.subresources, key=lambda s: s.name):
        group, version, kind = _sub_gvk(rt, sub)
        subs.append({"subresource": sub.name,
                     "responseKind": {"group": group, "version": version, "kind": kind},
                     "verbs": list(sub.verbs)})
    if subs:
        res["subresources"] = subs
    return res


def _aggregated_group(registry: Registry, group: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": group, "creationTimestamp": None} if group else {"creationTimestamp": None}
    versions = [
        {"version": v,
         "resources": [_aggregated_resource(rt) for rt in _sorted_types(registry, group, v)],
         "freshness": "Current"}
        for v in versions_of(registry, group)
    ]
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery(registry: Registry, core: bool, api_version: str = "apidiscovery.k8s.io/v2") -> dict[str, Any]:
    """APIGroupDiscoveryList for `/api` (core=True: the core group only) or `/apis` (all named groups).

    Pass api_version="apidiscovery.k8s.io/v2beta1" to answer a client that asked for v2beta1 only;
    the shape is the same.
    """
    if core:
        items = [_aggregated_group(registry, "")] if versions_of(registry, "") else []
    else:
        items = [_aggregated_group(registry, g) for g, _ in registry.groups()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def aggregated_api_version(content_type: str) -> str:
    """The apiVersion to put in an aggregated document served with this content type."""
    return "apidiscovery.k8s.io/v2beta1" if content_type == AGGREGATED_V2BETA1 else "apidiscovery.k8s.io/v2"


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str], float]]:
    ranges = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        mtype = fields[0].lower()
        if not mtype:
            continue
        params: dict[str, str] = {}
        for f in fields[1:]:
            key, sep, value = f.partition("=")
            if sep:
                params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 1.0
        ranges.append((mtype, params, q))
    return ranges


def wants_aggregated(accept: str | None) -> str | None:
    """The aggregated discovery content type to answer with for this Accept header, or None for legacy.

    Ranges are tried by quality, then in the client's order (kubectl lists v2 before v2beta1).
    Only JSON is offered: a protobuf-only request for aggregated discovery gets the legacy document.
    """
    if not accept:
        return None
    ranges = _media_ranges(accept)
    order = sorted(range(len(ranges)), key=lambda i: -ranges[i][2])
    for i in order:
        mtype, params, q = ranges[i]
        if q <= 0:
            continue
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if mtype in ("application/json", "application/*", "*/*") and params.get("v") in _AGGREGATED:
                return _AGGREGATED[params["v"]]
            continue
        if mtype in ("application/json", "application/*", "*/*") and not params.get("as"):
            # A plain JSON range ranked before any aggregated one: the client prefers legacy.
            return None
    return None
