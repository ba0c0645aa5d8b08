"""ControllerRevisions shared by the StatefulSet and DaemonSet controllers (upstream's pkg/controller/history).

A revision stores a strategic-merge patch that restores the owner's pod template (`data`), a `revision`
number (one more than the highest existing), the label `controller-revision-hash` and a controller
ownerReference.  Its name is `<owner>-<hash>`; the hash is FNV-32a of the data plus the owner's
`collisionCount`, so a clash with a different revision of the same name is resolved by bumping that count.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubelite.api.resources import ResourceType
from kubelite.client import ApiClient, ClientError

from . import controller_utils as cu
from .deployment_util import fnv32a, safe_encode

Obj = dict[str, Any]

HASH_LABEL = "controller-revision-hash"
# upstream keeps revision names within 253 characters: prefix ≤ 223, the hash and a dash
_MAX_PREFIX = 223


def template_patch(template: Obj | None) -> Obj:
    """The revision data of a StatefulSet / DaemonSet: the whole template, replacing the current one."""
    tmpl = copy.deepcopy(template or {})
    tmpl["$patch"] = "replace"
    return {"spec": {"template": tmpl}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision restores."""
    tmpl = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    return tmpl


def _canonical(data: Obj) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def revision_hash(data: Obj, collision_count: int | None = None) -> str:
    raw = _canonical(data)
    if collision_count is not None:
        raw += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(fnv32a(raw)))


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:_MAX_PREFIX]}-{hash_}"


def new_revision(owner: Obj, api_version: str, kind: str, template_labels: dict[str, str] | None, data: Obj,
                 number: int, collision_count: int | None) -> Obj:
    h = revision_hash(data, collision_count)
    labels = dict(template_labels or {})
    labels[HASH_LABEL] = h
    meta: Obj = {"name": revision_name(owner["metadata"]["name"], h),
                 "namespace": owner["metadata"]["namespace"], "labels": labels,
                 "ownerReferences": [cu.owner_reference(owner, api_version, kind)]}
    # the owner's annotations, as upstream's DaemonSet and StatefulSet snapshots copy them: `rollout history`
    # reads kubernetes.io/change-cause from each revision
    owner_annotations = owner["metadata"].get("annotations")
    if owner_annotations:
        meta["annotations"] = dict(owner_annotations)
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta, "data": data,
            "revision": number}


def revision_number(rev: Obj) -> int:
    return int(rev.get("revision") or 0)


def sort_revisions(revisions: list[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name."""
    return sorted(revisions, key=lambda r: (revision_number(r), r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"].get("name") or ""))


def next_revision(revisions: list[Obj]) -> int:
    return max((revision_number(r) for r in revisions), default=0) + 1


def equal_revision(a: Obj, b: Obj) -> bool:
    ha = (a["metadata"].get("labels") or {}).get(HASH_LABEL)
    hb = (b["metadata"].get("labels") or {}).get(HASH_LABEL)
    if ha is None or ha != hb:
        return False
    return _canonical(a.get("data") or {}) == _canonical(b.get("data") or {})


def find_equal_revisions(revisions: list[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


class History:
    """The API calls on ControllerRevisions (creates resolve name collisions as upstream's history does)."""

    def __init__(self, client: ApiClient, rt: ResourceType) -> None:
        self.client = client
        self.rt = rt

    async def create(self, revision: Obj, collision_count: int) -> tuple[Obj, int]:
        """Create `revision`; returns (the stored revision, the collision count finally used)."""
        data = revision.get("data") or {}
        while True:
            h = revision_hash(data, collision_count)
            rev = copy.deepcopy(revision)
            owner_name = rev["metadata"]["ownerReferences"][0]["name"]
            rev["metadata"]["name"] = revision_name(owner_name, h)
            rev["metadata"].setdefault("labels", {})[HASH_LABEL] = h
            ns = rev["metadata"]["namespace"]
            try:
                return await self.client.create(self.rt, rev, ns), collision_count
            except ClientError as e:
                if not e.is_already_exists:
                    raise
            existing = await self.client.get(self.rt, ns, rev["metadata"]["name"])
            if equal_revision(existing, rev):
                return existing, collision_count
            collision_count += 1

    async def update_revision(self, revision: Obj, number: int) -> Obj:
        if revision_number(revision) == number:
            return revision
        return await self.client.patch(self.rt, revision["metadata"]["namespace"], revision["metadata"]["name"],
                                       {"revision": number}, patch_type="merge")

    async def delete(self, revision: Obj) -> None:
        try:
            await self.client.delete(self.rt, revision["metadata"]["namespace"], revision["metadata"]["name"],
                                     preconditions={"uid": revision["metadata"]["uid"]})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise
