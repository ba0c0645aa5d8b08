"""The ServiceAccount controller: a `default` ServiceAccount in every active namespace (upstream's
pkg/controller/serviceaccount/serviceaccounts_controller.go); deleted ones are recreated."""

from __future__ import annotations

from typing import Any

from kubelite.client import ClientError

from .manager import Controller, ControllerContext

Obj = dict[str, Any]
DEFAULT_SERVICE_ACCOUNTS = ("default",)


class ServiceAccountController(Controller):
    name = "serviceaccount-controller"
    aliases = ("serviceaccount",)
    event_component = "serviceaccount-controller"
    service_account = "service-account-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=ctx.config.concurrent_serviceaccount_syncs)
        self.ns_rt = ctx.rt("", "v1", "namespaces")
        self.sa_rt = ctx.rt("", "v1", "serviceaccounts")
        self.namespaces = self.informer(self.ns_rt)
        self.namespaces.add_handler(self.enqueue, self.enqueue_update, None)
        self.accounts = self.informer(self.sa_rt)
        self.accounts.add_handler(None, None, self._sa_deleted)

    def _sa_deleted(self, sa: Obj) -> None:
        if sa["metadata"]["name"] in DEFAULT_SERVICE_ACCOUNTS:
            self.queue.add(sa["metadata"]["namespace"])

    async def sync(self, key: str) -> None:
        ns = self.namespaces.get(None, key)
        if ns is None or (ns.get("status") or {}).get("phase", "Active") != "Active" \
                or ns["metadata"].get("deletionTimestamp"):
            return
        for name in DEFAULT_SERVICE_ACCOUNTS:
            if self.accounts.get(key, name) is not None:
                continue
            try:
                await self.client.create(self.sa_rt, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                      "metadata": {"name": name}}, key)
            except ClientError as e:
                # exists already (the informer lags) or the namespace began terminating meanwhile
                if not (e.is_already_exists or e.is_forbidden or e.is_not_found):
                    raise
