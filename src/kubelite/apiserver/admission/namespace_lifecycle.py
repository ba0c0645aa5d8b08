"""NamespaceLifecycle: no new content in a missing or terminating namespace; immortal namespaces stay."""

from __future__ import annotations

from ...api import errors
from . import _store

IMMORTAL = frozenset({"default", "kube-system", "kube-public"})
# access reviews only answer a question; saying the namespace is missing would leak it
_ACCESS_REVIEWS = frozenset({("authorization.k8s.io", "localsubjectaccessreviews")})


class NamespaceLifecycle:
    name = "NamespaceLifecycle"

    async def admit(self, ctx, a) -> None:
        is_namespace = a.is_("", "namespaces")
        if a.op == "DELETE" and is_namespace and a.name in IMMORTAL:
            raise errors.forbidden("namespaces", "", a.name, "this namespace may not be deleted")
        if is_namespace or not a.rt.namespaced or not a.namespace:
            return
        if a.op == "DELETE" or (a.group, a.resource) in _ACCESS_REVIEWS:
            return
        ns = await _store.get(ctx, "", "v1", "namespaces", "", a.namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", a.namespace)
        if a.op != "CREATE":
            return
        terminating = ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating"
        if terminating:
            err = a.forbidden(f"unable to create new content in namespace {a.namespace} because it is being terminated")
            err.details = dict(err.details or {})
            err.details["causes"] = [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                      "message": f"namespace {a.namespace} is being terminated"}]
            raise err
