"""DefaultStorageClass: a PersistentVolumeClaim without storageClassName gets the default StorageClass."""

from __future__ import annotations

from . import _store

DEFAULT_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")


def is_default(sc: dict) -> bool:
    notes = (sc.get("metadata") or {}).get("annotations") or {}
    return any(notes.get(k) == "true" for k in DEFAULT_ANNOTATIONS)


def pick_default(classes: list[dict]) -> dict | None:
    """The newest default class (several defaults: upstream picks the most recently created, then by name)."""
    defaults = [c for c in classes if is_default(c)]
    if not defaults:
        return None
    defaults.sort(key=lambda c: (c["metadata"].get("creationTimestamp", ""), c["metadata"].get("name", "")))
    return defaults[-1]


class DefaultStorageClass:
    name = "DefaultStorageClass"

    async def admit(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not a.is_("", "persistentvolumeclaims") or not isinstance(a.obj, dict):
            return
        spec = a.obj.setdefault("spec", {})
        if spec.get("storageClassName") is not None:
            return
        chosen = pick_default(await _store.list_all(ctx, "storage.k8s.io", "v1", "storageclasses", None))
        if chosen is not None:
            spec["storageClassName"] = chosen["metadata"]["name"]
