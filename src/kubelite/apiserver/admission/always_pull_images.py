"""AlwaysPullImages (off by default): every container pulls its image, so a pod cannot run an image another
tenant pulled onto the node without having the credentials for it."""

from __future__ import annotations

from ...api import errors

_KEYS = ("initContainers", "containers", "ephemeralContainers")


class AlwaysPullImages:
    name = "AlwaysPullImages"

    def _applies(self, a) -> bool:
        return (a.is_("", "pods") and a.op in ("CREATE", "UPDATE") and isinstance(a.obj, dict)
                and a.subresource in ("", "ephemeralcontainers"))

    async def admit(self, ctx, a) -> None:
        if not self._applies(a):
            return
        spec = a.obj.get("spec") or {}
        for key in _KEYS:
            for c in spec.get(key) or ():
                if isinstance(c, dict):
                    c["imagePullPolicy"] = "Always"

    async def validate(self, ctx, a) -> None:
        if not self._applies(a):
            return
        spec = a.obj.get("spec") or {}
        causes = []
        for key in _KEYS:
            for i, c in enumerate(spec.get(key) or ()):
                if isinstance(c, dict) and c.get("imagePullPolicy") != "Always":
                    causes.append({"type": "FieldValueNotSupported", "field": f"spec.{key}[{i}].imagePullPolicy",
                                   "message": f'Unsupported value: "{c.get("imagePullPolicy", "")}": '
                                              'supported values: "Always"'})
        if causes:
            err = errors.invalid("Pod", "", a.name, causes)
            raise a.forbidden(err.message.split(" is invalid: ", 1)[1])
