"""ServiceAccount: pods run as a ServiceAccount (`default` when unnamed) that must exist, and get its token as
the projected `kube-api-access-<5 chars>` volume in every container, unless automounting is switched off.

Upstream's ServiceAccount controller creates `default` in a namespace the moment the namespace appears, and this
plugin waits for it. kubelite's API server can run without its controllers (`kubelite server`), so when
`default` is missing in an active namespace the plugin creates it itself, as the controller would have; any other
missing ServiceAccount refuses the pod with upstream's message.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import objectmeta
from . import _store

DEFAULT_NAME = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
TOKEN_EXPIRATION_SECONDS = 3607  # upstream's WarnOnlyBoundTokenExpirationSeconds
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"

Obj = dict[str, Any]


def token_volume_source() -> Obj:
    return {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}


def should_automount(sa: Obj, spec: Obj) -> bool:
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if sa.get("automountServiceAccountToken") is not None:
        return bool(sa["automountServiceAccountToken"])
    return True


def mount_token(spec: Obj) -> None:
    volumes = list(spec.get("volumes") or [])
    existing = next((v for v in volumes if isinstance(v, dict) and str(v.get("name", "")).startswith(VOLUME_PREFIX)),
                    None)
    name = existing["name"] if existing else objectmeta.generate_name(VOLUME_PREFIX)
    needs = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts") or []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needs = True
    if needs and existing is None:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


def _secret_refs(spec: Obj) -> list[tuple[str, str]]:
    """(message prefix, secret) for secret volumes and env references of init and regular containers."""
    out = [("volume", str((v.get("secret") or {}).get("secretName", ""))) for v in spec.get("volumes") or ()
           if isinstance(v, dict) and v.get("secret") is not None]
    return out


class ServiceAccount:
    name = "ServiceAccount"

    def _ignored(self, a) -> bool:
        return (not a.is_("", "pods") or a.subresource not in ("", "ephemeralcontainers")
                or not isinstance(a.obj, dict))

    async def _lookup(self, ctx, a, name: str) -> Obj:
        ns = a.namespace
        sa = await _store.get(ctx, "", "v1", "serviceaccounts", ns, name)
        if sa is not None:
            return sa
        if name == DEFAULT_NAME:
            created = await self._create_default(ctx, a)
            if created is not None:
                return created
        raise a.forbidden(f'error looking up service account {ns}/{name}: serviceaccount "{name}" not found')

    async def _create_default(self, ctx, a) -> Obj | None:
        ns = await _store.get(ctx, "", "v1", "namespaces", "", a.namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase", "Active") != "Active":
            return None
        sa = {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": DEFAULT_NAME, "namespace": a.namespace}}
        if a.dry:
            return sa
        from .. import rest
        from ..request_info import RequestInfo

        rt = ctx.registry.get("", "v1", "serviceaccounts")
        info = RequestInfo(is_resource=True, path="", verb="create", api_prefix="api", version="v1",
                           namespace=a.namespace, resource="serviceaccounts")
        try:
            created, _ = await rest.create_object(ctx, rt, copy.deepcopy(sa), info, False)
            return created
        except Exception:  # created concurrently (the controller or another request): read it back
            return await _store.get(ctx, "", "v1", "serviceaccounts", a.namespace, DEFAULT_NAME)

    async def admit(self, ctx, a) -> None:
        if self._ignored(a) or a.op != "CREATE":
            return
        pod = a.obj
        if MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            return
        spec = pod.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_NAME
        spec["serviceAccount"] = spec["serviceAccountName"]  # the deprecated alias the API still serves
        sa = await self._lookup(ctx, a, spec["serviceAccountName"])
        if should_automount(sa, spec):
            mount_token(spec)
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in sa["imagePullSecrets"]
                                        if isinstance(s, dict)]

    async def validate(self, ctx, a) -> None:
        if self._ignored(a):
            return
        pod = a.obj
        spec = pod.get("spec") or {}
        if a.op == "UPDATE" and a.subresource == "ephemeralcontainers":
            if not spec.get("serviceAccountName"):
                raise a.forbidden(f"no service account specified for pod {a.namespace}/{a.name}")
            await self._lookup(ctx, a, spec["serviceAccountName"])
            return
        if a.op != "CREATE":
            return
        if MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {}):
            if spec.get("serviceAccountName"):
                raise a.forbidden("a mirror pod may not reference service accounts")
            if _secret_refs(spec):
                raise a.forbidden("a mirror pod may not reference secrets")
            for v in spec.get("volumes") or ():
                for src in ((v or {}).get("projected") or {}).get("sources") or ():
                    if (src or {}).get("serviceAccountToken") is not None:
                        raise a.forbidden("a mirror pod may not use ServiceAccountToken volume projections")
            return
        if not spec.get("serviceAccountName"):
            raise a.forbidden(f"no service account specified for pod {a.namespace}/{a.name}")
        sa = await self._lookup(ctx, a, spec["serviceAccountName"])
        if str(((sa.get("metadata") or {}).get("annotations") or {}).get(ENFORCE_MOUNTABLE_SECRETS, "")).lower() \
                in ("true", "1", "t"):
            allowed = {str(s.get("name", "")) for s in sa.get("secrets") or () if isinstance(s, dict)}
            for _, secret in _secret_refs(spec):
                if secret not in allowed:
                    raise a.forbidden(f'volume with secret.secretName="{secret}" is not allowed because service '
                                      f"account {sa['metadata']['name']} does not reference that secret")
