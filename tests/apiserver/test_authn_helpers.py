"""An in-process API context (SQLite store in a temp dir) and object helpers for the authentication unit tests."""

from __future__ import annotations

import base64
import os
from typing import Any

from kubelite.api.resources import Registry
from kubelite.apiserver import rest
from kubelite.apiserver.config import ServerConfig
from kubelite.apiserver.context import ApiContext
from kubelite.apiserver.request_info import RequestInfo
from kubelite.pki.ca import ensure_cluster_pki
from kubelite.storage.sqlite import SQLiteStore


async def make_context(tmp_path) -> tuple[ApiContext, Any]:
    data_dir = str(tmp_path / "data")
    pki = ensure_cluster_pki(data_dir)
    store = SQLiteStore(os.path.join(data_dir, "state.db"), fsync=False)
    await store.start()
    ctx = ApiContext(config=ServerConfig(data_dir=data_dir), store=store, registry=Registry())
    for ns in ("default", "kube-system", "other"):
        await create(ctx, "namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return ctx, pki


def _info(ctx: ApiContext, resource: str, namespace: str, name: str, verb: str) -> tuple[Any, RequestInfo]:
    rt = ctx.registry.get("", "v1", resource)
    assert rt is not None
    return rt, RequestInfo(is_resource=True, path=rt.path(namespace, name), verb=verb, version="v1",
                           namespace=namespace, resource=resource, name=name)


async def create(ctx: ApiContext, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
    rt, info = _info(ctx, resource, namespace, "", "create")
    created, _ = await rest.create_object(ctx, rt, obj, info, dry=False)
    return created


async def delete(ctx: ApiContext, resource: str, namespace: str, name: str) -> None:
    rt, info = _info(ctx, resource, namespace, name, "delete")
    await rest.delete_object(ctx, rt, info, {"gracePeriodSeconds": 0}, False)


async def get(ctx: ApiContext, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
    from kubelite.apiserver import codec

    rt, _ = _info(ctx, resource, namespace, name, "get")
    kv = await ctx.store.get(rt.key(namespace, name))
    return None if kv is None else codec.decode_kv(kv)


async def service_account(ctx: ApiContext, name: str, namespace: str = "default") -> dict[str, Any]:
    return await create(ctx, "serviceaccounts", namespace,
                        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})


async def pod(ctx: ApiContext, name: str, sa: str, namespace: str = "default") -> dict[str, Any]:
    return await create(ctx, "pods", namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c", "image": "busybox"}]}})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
