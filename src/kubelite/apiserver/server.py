"""Starting and stopping the API server: PKI, store, bootstrap objects, HTTPS listener, compaction."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from dataclasses import dataclass

from aiohttp import web

from .. import heap
from ..api import errors
from ..api.netaddr import advertised
from ..api.resources import Registry
from ..pki.ca import ClusterPKI, ensure_cluster_pki
from ..pki.kubeconfig import write_kubeconfig
from ..pki.tls import server_ssl_context
from ..storage.encryption import wrap_store
from ..storage.interface import Store, StoreError
from ..storage.sqlite import SQLiteStore
from . import access_reviews, admission, audit, authz, bootstrap, crds, metrics_api
from .allocators import ServiceAllocators
from .app import build_app
from .authn_setup import build_authentication
from .config import ServerConfig
from .context import ApiContext
from .node_authorizer import make_node_restriction

log = logging.getLogger("kubelite.apiserver")


class StartupError(Exception):
    """A problem the user must fix (port in use, unwritable data dir): printed as one line."""


def admin_kubeconfig_path(data_dir: str) -> str:
    return os.path.join(data_dir, "admin.kubeconfig")


@dataclass
class RunningServer:
    config: ServerConfig
    ctx: ApiContext
    runner: web.AppRunner
    pki: ClusterPKI
    kubeconfig: str
    url: str
    _compactor: asyncio.Task | None = None
    _trimmer: asyncio.Task | None = None  # returns freed heap memory (kubelite.heap)
    _endpoints: object | None = None  # the lease endpoint reconciler, with a shared (etcd) store

    async def stop(self) -> None:
        if self._endpoints is not None:
            await self._endpoints.stop()  # type: ignore[attr-defined]
        for task in (self._compactor, self._trimmer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.runner.cleanup()
        await self.ctx.store.close()


def _prepare_data_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as f:
            f.write("")
        os.unlink(probe)
    except OSError as e:
        raise StartupError(f"data dir {path} is not writable: {e.strerror or e}") from None


def _backend_store(config: ServerConfig) -> Store:
    if config.etcd_servers:
        from ..storage.etcd import EtcdStore

        return EtcdStore(config.etcd_servers, prefix=config.etcd_prefix, ca_file=config.etcd_cafile,
                         cert_file=config.etcd_certfile, key_file=config.etcd_keyfile)
    return SQLiteStore(os.path.join(config.data_dir, "state.db"), fsync=config.fsync)


async def start(config: ServerConfig) -> RunningServer:
    _prepare_data_dir(config.data_dir)
    allocators = ServiceAllocators(config.service_cluster_ip_range, config.service_node_port_range)
    loop = asyncio.get_running_loop()
    pki_task = loop.run_in_executor(None, lambda: ensure_cluster_pki(
        config.data_dir, addresses=list(config.extra_sans), service_ip=allocators.first_ip))
    registry = Registry()
    try:  # every value is read through the encryption layer: encrypted data without its key answers 500
        store = wrap_store(_backend_store(config), config.encryption_provider_config, registry)
    except ValueError as e:
        raise StartupError(str(e)) from None
    try:
        await store.start()
    except StoreError as e:
        raise StartupError(f"the store did not start: {e}") from None
    try:
        pki = await pki_task
        ctx = ApiContext(config=config, store=store, registry=registry, allocators=allocators)
        try:
            ctx.admission = admission.build_chain(config)  # type: ignore[assignment]
        except ValueError as e:
            raise StartupError(str(e)) from None
        try:
            authn = build_authentication(ctx, config, pki)
        except ValueError as e:
            raise StartupError(str(e)) from None
        await allocators.load(store)
        advertise = config.advertise_address or advertised(config.bind_address)
        await bootstrap.ensure_objects(ctx, advertise)
        await crds.load(ctx)  # serve the stored CustomResourceDefinitions
        await metrics_api.load(ctx)  # and the metrics API when a real node is registered
        authorization = authz.build(config.authorization_modes, store)
        ctx.authorizer = authorization
        if "Node" in config.authorization_modes:
            ctx.admission.append(make_node_restriction(authz.current_user))
        await authorization.start(ctx)  # RBAC objects loaded, bootstrap policy reconciled
        await admission.start(ctx)  # built-in PriorityClasses, the quota refresher
        # Startup state (schemas, registry, policy) lives for the whole run: frozen, it leaves the collector's
        # view, so the full collections a large LIST or Table triggers walk only request garbage.
        heap.tune_collector()
        try:
            auditor = audit.build(config.audit_policy_file, config.audit_log_path,
                                  max_size_mb=config.audit_log_maxsize, max_backups=config.audit_log_maxbackup,
                                  max_age_days=config.audit_log_maxage, log_format=config.audit_log_format)
        except ValueError as e:
            raise StartupError(str(e)) from None
        app = build_app(ctx, authn.authentication, authorization, auditor)
        app.on_cleanup.append(audit.cleanup)  # flush and close the audit log
        app.middlewares.append(admission.warning_middleware)  # admission warnings → Warning headers
        app.on_cleanup.append(lambda _app: admission.stop(ctx))
        authn.install(app)
        access_reviews.install(app, authorization)
        app.on_cleanup.append(lambda _app: authorization.stop())
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=server_ssl_context(pki),
                           backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            if e.errno == errno.EADDRINUSE:
                raise StartupError(f"port {config.port} on {config.bind_address} is already in use") from None
            raise StartupError(f"cannot listen on {config.bind_address}:{config.port}: {e.strerror or e}") from None
    except BaseException:
        await store.close()
        raise
    port = config.port
    if port == 0:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        config.port = port
    host = config.bind_address if config.bind_address not in ("0.0.0.0", "::") else "127.0.0.1"
    url = f"https://{host}:{port}"
    kubeconfig = admin_kubeconfig_path(config.data_dir)
    _write_admin_kubeconfig(pki, config.kubeconfig_server or url, kubeconfig)
    if config.write_kubeconfig:
        _write_admin_kubeconfig(pki, config.kubeconfig_server or url, config.write_kubeconfig)
    ctx.ready = True
    server = RunningServer(config, ctx, runner, pki, kubeconfig, url)
    server._compactor = asyncio.create_task(_compaction_loop(ctx))
    server._trimmer = asyncio.create_task(heap.trim_periodically())
    if config.etcd_servers:  # other API servers may share this store: the `kubernetes` endpoints list them all
        from .endpoint_reconciler import LeaseEndpointReconciler

        server._endpoints = reconciler = LeaseEndpointReconciler(ctx, advertise, port)
        reconciler.start()
    return server


def _write_admin_kubeconfig(pki: ClusterPKI, url: str, path: str) -> None:
    cert, key = pki.admin_cert_pem, pki.admin_key_pem
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    write_kubeconfig(path, server=url, ca_pem=pki.ca_cert_pem, client_cert_pem=cert, client_key_pem=key)


async def _compaction_loop(ctx: ApiContext) -> None:
    """Forget history as upstream compacts etcd: each tick compacts to the revision seen one tick earlier,
    so a watch can resume from anything newer than one interval."""
    interval = ctx.config.compaction_interval
    seen = ctx.store.current_revision
    while True:
        await asyncio.sleep(interval)
        target, seen = seen, ctx.store.current_revision
        if target > ctx.store.compacted_revision:
            try:
                await ctx.store.compact(target)
            except Exception:
                log.exception("compaction failed")


__all__ = ["RunningServer", "StartupError", "start", "admin_kubeconfig_path", "errors"]
