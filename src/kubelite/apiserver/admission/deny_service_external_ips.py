"""DenyServiceExternalIPs (off by default): no new spec.externalIPs on Services (CVE-2020-8554)."""

from __future__ import annotations


class DenyServiceExternalIPs:
    name = "DenyServiceExternalIPs"

    async def validate(self, ctx, a) -> None:
        if not a.is_("", "services") or a.op not in ("CREATE", "UPDATE") or not isinstance(a.obj, dict):
            return
        new = list((a.obj.get("spec") or {}).get("externalIPs") or [])
        if not new:
            return
        old = set(((a.old or {}).get("spec") or {}).get("externalIPs") or []) if a.op == "UPDATE" else set()
        if a.old is not None and set(new) <= old:
            return  # keeping (a subset of) what was there is allowed
        raise a.forbidden("Use of external IPs is denied by admission control")
