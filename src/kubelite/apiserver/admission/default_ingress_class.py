"""DefaultIngressClass: an Ingress without spec.ingressClassName (nor the legacy class annotation) gets the
IngressClass marked `ingressclass.kubernetes.io/is-default-class: "true"`."""

from __future__ import annotations

from . import _store

DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_ANNOTATION = "kubernetes.io/ingress.class"


class DefaultIngressClass:
    name = "DefaultIngressClass"

    async def admit(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not a.is_("networking.k8s.io", "ingresses") \
                or not isinstance(a.obj, dict):
            return
        spec = a.obj.get("spec")
        if not isinstance(spec, dict) or spec.get("ingressClassName") is not None:
            return
        if LEGACY_ANNOTATION in ((a.obj.get("metadata") or {}).get("annotations") or {}):
            return
        classes = await _store.list_all(ctx, "networking.k8s.io", "v1", "ingressclasses", None)
        defaults = [c for c in classes
                    if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"]
        if not defaults:
            return
        # several defaults: upstream takes the newest (then by name)
        defaults.sort(key=lambda c: (c["metadata"].get("creationTimestamp", ""), c["metadata"].get("name", "")))
        spec["ingressClassName"] = defaults[-1]["metadata"]["name"]
