"""The controller-manager: a framework for control loops, a registry of them, leader election.

Every controller is a `Controller` subclass.  In `__init__` it asks the shared informer factory
(`self.informer(rt)`) for the informers it reads and registers handlers that enqueue keys into
`self.queue`; `sync(key)` does one reconciliation for one key.  The framework starts the informers, waits
until the controller's informers have synced, then runs `workers` concurrent workers over the queue: a key
is never processed by two workers at once; an exception requeues the key with per-key exponential backoff
(a 409 Conflict quietly, anything else logged).  Each controller has its own `EventRecorder`
(`self.recorder`, source component `event_component`).

Adding a controller (e.g. statefulset):

    # src/kubelite/controllers/statefulset.py
    class StatefulSetController(Controller):
        name = "statefulset-controller"          # upstream's --controllers name
        aliases = ("statefulset",)                # older spellings accepted by --controllers
        event_component = "statefulset-controller"
        service_account = "statefulset-controller"  # writes as kube-system/statefulset-controller (its RBAC role)

        def __init__(self, ctx: ControllerContext) -> None:
            super().__init__(ctx, workers=ctx.config.concurrent_statefulset_syncs)
            self.sets = self.informer(STATEFULSETS)
            self.sets.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
            self.pods = self.informer(PODS)
            ...

        async def sync(self, key: str) -> None:
            ...

    # then one line in CONTROLLERS below:  "statefulset-controller": "kubelite.controllers.statefulset:StatefulSetController",
    # and, if it needs timings, fields in ControllerManagerConfig (with upstream's defaults).

Optional hooks: `async def start(self)` (after informers are started, before workers; e.g. discovery) and
`async def stop(self)`; `self.run_periodic(coro_fn, period)` for resync loops (namespace / GC rediscovery).

Entry point: `await run_controller_manager(client, stop=stop_event, config=ControllerManagerConfig(...))`
runs the enabled controllers while this process holds the Lease `kube-system/kube-controller-manager`
(contending again whenever it loses it) until `stop` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kubelite.api.resources import Registry, ResourceType
from kubelite.client import (
    ApiClient,
    ClientError,
    EventRecorder,
    Informer,
    LeaderElector,
    SharedInformerFactory,
    ShutDown,
    WorkQueue,
    key_of,
)
from kubelite.client.leaderelection import default_identity

log = logging.getLogger("kubelite.controllers")


@dataclass
class ControllerManagerConfig:
    """Every setting of the controller-manager, with kube-controller-manager's defaults (flag in comments)."""

    # leader election (--leader-elect, --leader-elect-lease-duration, -renew-deadline, -retry-period)
    leader_elect: bool = True
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    lease_name: str = "kube-controller-manager"
    lease_namespace: str = "kube-system"
    identity: str | None = None  # default: hostname_<uuid>
    # --use-service-account-credentials (kubeadm sets it): each controller writes as its own ServiceAccount
    # in kube-system (system:controller:<name> RBAC roles) with a token it requests and refreshes; informers
    # read with the manager's own identity. Without it every controller uses the manager's client.
    use_service_account_credentials: bool = True
    service_account_token_seconds: int = 3600
    # --controller-start-interval
    controller_start_interval: float = 0.0
    informer_sync_timeout: float = 120.0
    # workers (--concurrent-*-syncs)
    concurrent_deployment_syncs: int = 5
    concurrent_replicaset_syncs: int = 5
    concurrent_rc_syncs: int = 5
    concurrent_namespace_syncs: int = 10
    concurrent_serviceaccount_syncs: int = 1  # upstream runs the SA controller with one worker
    concurrent_gc_syncs: int = 20
    concurrent_root_ca_syncs: int = 1
    # replicaset / replicationcontroller: creates/deletes per sync, expectations' expiry
    burst_replicas: int = 500
    expectations_timeout: float = 300.0
    # deployment: the revision-history annotation's length limit (characters)
    max_revision_history_chars: int = 2000
    # namespace: --namespace-sync-period (full resync) and the pause while content is being finalized
    namespace_sync_period: float = 300.0
    namespace_finalizer_estimate: float = 15.0
    # Write the deletion conditions (NamespaceContentRemaining, …) to a terminating namespace's status.
    namespace_status_conditions: bool = True
    # garbage collector: --enable-garbage-collector; resources it never tracks; how often it rediscovers
    # resource types (custom resources come and go)
    enable_garbage_collector: bool = True
    gc_ignored_resources: tuple[tuple[str, str], ...] = (("", "events"), ("events.k8s.io", "events"))
    gc_discovery_period: float = 30.0
    # root CA publisher: the cluster CA bundle (PEM text, or a file: <data_dir>/pki/ca.crt)
    root_ca_pem: str | None = None
    root_ca_file: str | None = None
    # CSR signing (--cluster-signing-cert-file, --cluster-signing-key-file, --cluster-signing-duration):
    # the cluster CA, <data_dir>/pki/ca.crt and ca.key; without them the signing controller signs nothing
    cluster_signing_cert_file: str | None = None
    cluster_signing_key_file: str | None = None
    cluster_signing_duration: float = 365 * 24 * 3600.0
    # informers
    informer_page_size: int = 500
    extra: dict[str, Any] = field(default_factory=dict)  # settings of controllers added later

    @classmethod
    def for_data_dir(cls, data_dir: str, **overrides: Any) -> ControllerManagerConfig:
        """Defaults plus the CA bundle of the cluster whose state lives in `data_dir`."""
        overrides.setdefault("root_ca_file", os.path.join(data_dir, "pki", "ca.crt"))
        overrides.setdefault("cluster_signing_cert_file", os.path.join(data_dir, "pki", "ca.crt"))
        overrides.setdefault("cluster_signing_key_file", os.path.join(data_dir, "pki", "ca.key"))
        return cls(**overrides)

    def ca_bundle(self) -> str | None:
        if self.root_ca_pem:
            return self.root_ca_pem
        if self.root_ca_file:
            try:
                with open(self.root_ca_file) as f:
                    return f.read()
            except OSError:
                log.warning("root CA file %s cannot be read", self.root_ca_file)
        return None


class ControllerContext:
    """What the manager hands each controller: the client, the shared informers, config, resource types."""

    def __init__(self, client: ApiClient, config: ControllerManagerConfig,
                 informers: SharedInformerFactory | None = None, registry: Registry | None = None) -> None:
        self.client = client
        self.config = config
        self.informers = informers or SharedInformerFactory(client, page_size=config.informer_page_size)
        self.registry = registry or Registry()
        self.recorders: list[EventRecorder] = []

    def with_client(self, client: ApiClient) -> ControllerContext:
        """The same informers, config and recorders list, writing through another client."""
        ctx = ControllerContext.__new__(ControllerContext)
        ctx.__dict__.update(self.__dict__)
        ctx.client = client
        return ctx

    def event_recorder(self, component: str) -> EventRecorder:
        recorder = EventRecorder(self.client, component)
        self.recorders.append(recorder)
        return recorder

    def rt(self, group: str, version: str, resource: str) -> ResourceType:
        rt = self.registry.get(group, version, resource)
        if rt is None:
            raise KeyError(f"{resource}.{group}/{version} is not a known resource type")
        return rt


class Controller:
    """Base of every control loop (see the module docstring)."""

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    event_component: ClassVar[str] = ""
    service_account: ClassVar[str] = ""  # kube-system SA it acts as (--use-service-account-credentials)
    enabled_by_default: ClassVar[bool] = True

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.config = ctx.config
        self.workers = workers
        self.queue = WorkQueue(self.name)
        self.recorder = ctx.event_recorder(self.event_component or self.name)
        self._informers: list[Informer] = []
        self._tasks: list[asyncio.Task] = []

    # -- wiring ----------------------------------------------------------------------------------------

    def informer(self, rt: ResourceType, **kwargs: Any) -> Informer:
        """The shared informer for `rt`; the controller's workers start once it has synced."""
        inf = self.ctx.informers.informer(rt, **kwargs)
        if inf not in self._informers:
            self._informers.append(inf)
        return inf

    def enqueue(self, obj: dict[str, Any]) -> None:
        self.queue.add(key_of(obj))

    def enqueue_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.queue.add(key_of(new))

    def enqueue_after(self, obj_or_key: dict[str, Any] | str, delay: float) -> None:
        key = obj_or_key if isinstance(obj_or_key, str) else key_of(obj_or_key)
        self.queue.add_after(key, delay)

    def run_periodic(self, fn: Callable[[], Awaitable[Any]], period: float) -> None:
        """Call `fn` every `period` seconds while the controller runs (errors are logged)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(period)
                try:
                    await fn()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s: periodic task failed", self.name)

        self._tasks.append(asyncio.create_task(loop(), name=f"{self.name}-periodic"))

    # -- to override -----------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Called once the controller's informers have synced, before the workers start."""

    async def stop(self) -> None:
        """Called when the controller stops (after its workers ended)."""

    # -- running ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait for the informers, then process the queue until cancelled."""
        for inf in self._informers:
            if not await inf.wait_for_sync(self.config.informer_sync_timeout):
                log.warning("%s: informer for %s did not sync in time; starting anyway", self.name,
                            inf.rt.resource)
        await self.start()
        workers = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                   for i in range(max(self.workers, 1))]
        try:
            await asyncio.gather(*workers)
        finally:
            for t in workers + self._tasks:
                t.cancel()
            for t in workers + self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._tasks.clear()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.sync(key)
            except asyncio.CancelledError:
                self.queue.done(key)
                raise
            except ClientError as e:
                if e.is_conflict or e.is_already_exists or e.is_not_found:
                    log.debug("%s: %s: %s (requeued)", self.name, key, e.message)
                else:
                    log.warning("%s: error syncing %r: %s %s", self.name, key, e.code, e.message)
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("%s: error syncing %r (retry %d)", self.name, key, self.queue.num_requeues(key) + 1)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            self.queue.done(key)


# Registry of the controllers this manager can run: upstream's --controllers name → "module:Class".
# Controllers are imported only when enabled.  Add yours here (see the module docstring).
CONTROLLERS: dict[str, str] = {
    "deployment-controller": "kubelite.controllers.deployment:DeploymentController",
    "replicaset-controller": "kubelite.controllers.replicaset:ReplicaSetController",
    "replicationcontroller-controller": "kubelite.controllers.replicaset:ReplicationControllerController",
    "namespace-controller": "kubelite.controllers.namespace:NamespaceController",
    "serviceaccount-controller": "kubelite.controllers.serviceaccount:ServiceAccountController",
    "root-ca-certificate-publisher-controller": "kubelite.controllers.rootca:RootCACertPublisher",
    "garbage-collector-controller": "kubelite.controllers.garbagecollector:GarbageCollector",
    "endpoints-controller": "kubelite.controllers.endpoints:EndpointsController",
    "endpointslice-controller": "kubelite.controllers.endpointslice:EndpointSliceController",
    "endpointslice-mirroring-controller": "kubelite.controllers.endpointslice:EndpointSliceMirroringController",
    "node-lifecycle-controller": "kubelite.controllers.nodelifecycle:NodeLifecycleController",
    "taint-eviction-controller": "kubelite.controllers.nodelifecycle:TaintEvictionController",
    "node-ipam-controller": "kubelite.controllers.nodeipam:NodeIpamController",
    "pod-garbage-collector-controller": "kubelite.controllers.podgc:PodGCController",
    "persistentvolume-binder-controller": "kubelite.controllers.persistentvolume:PersistentVolumeBinderController",
    "local-path-provisioner": "kubelite.controllers.localpath:LocalPathProvisioner",
    "statefulset-controller": "kubelite.controllers.statefulset:StatefulSetController",
    "daemonset-controller": "kubelite.controllers.daemonset:DaemonSetController",
    "job-controller": "kubelite.controllers.job:JobController",
    "cronjob-controller": "kubelite.controllers.cronjob:CronJobController",
    "ttl-after-finished-controller": "kubelite.controllers.job:TTLAfterFinishedController",
    "certificatesigningrequest-approving-controller": "kubelite.controllers.csr:CSRApprovingController",
    "certificatesigningrequest-signing-controller": "kubelite.controllers.csr:CSRSigningController",
    "certificatesigningrequest-cleaner-controller": "kubelite.controllers.csr:CSRCleanerController",
    "bootstrap-signer-controller": "kubelite.controllers.bootstrapsigner:BootstrapSigner",
}

# Older names upstream still accepts for --controllers.
ALIASES: dict[str, str] = {
    "statefulset": "statefulset-controller",
    "daemonset": "daemonset-controller",
    "job": "job-controller",
    "cronjob": "cronjob-controller",
    "ttl-after-finished": "ttl-after-finished-controller",
    "deployment": "deployment-controller",
    "replicaset": "replicaset-controller",
    "replicationcontroller": "replicationcontroller-controller",
    "namespace": "namespace-controller",
    "serviceaccount": "serviceaccount-controller",
    "root-ca-cert-publisher": "root-ca-certificate-publisher-controller",
    "garbagecollector": "garbage-collector-controller",
    "endpoint": "endpoints-controller",
    "endpointslice": "endpointslice-controller",
    "endpointslicemirroring": "endpointslice-mirroring-controller",
    "nodelifecycle": "node-lifecycle-controller",
    "nodeipam": "node-ipam-controller",
    "podgc": "pod-garbage-collector-controller",
    "persistentvolume-binder": "persistentvolume-binder-controller",
    "csrapproving": "certificatesigningrequest-approving-controller",
    "csrsigning": "certificatesigningrequest-signing-controller",
    "csrcleaner": "certificatesigningrequest-cleaner-controller",
    "bootstrapsigner": "bootstrap-signer-controller",
}


# The kube-system ServiceAccount of each upstream controller (its system:controller:<sa> role), for
# controllers whose class sets no `service_account`.
SERVICE_ACCOUNTS: dict[str, str] = {
    "endpoints-controller": "endpoint-controller",
    "endpointslice-controller": "endpointslice-controller",
    "endpointslice-mirroring-controller": "endpointslicemirroring-controller",
    "node-lifecycle-controller": "node-controller",
    "taint-eviction-controller": "node-controller",
    "node-ipam-controller": "node-controller",
    "pod-garbage-collector-controller": "pod-garbage-collector",
    "persistentvolume-binder-controller": "persistent-volume-binder",
    "statefulset-controller": "statefulset-controller",
    "daemonset-controller": "daemon-set-controller",
    "job-controller": "job-controller",
    "cronjob-controller": "cronjob-controller",
    "ttl-after-finished-controller": "ttl-after-finished-controller",
}


def register_controller(name: str, target: str | type[Controller], *aliases: str) -> None:
    """Add a controller at run time (a "module:Class" path or the class itself)."""
    CONTROLLERS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    for alias in aliases:
        ALIASES[alias] = name


def controller_class(name: str) -> type[Controller]:
    target = CONTROLLERS[ALIASES.get(name, name)]
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def resolve_controllers(requested: list[str] | None, config: ControllerManagerConfig) -> list[str]:
    """Upstream's --controllers semantics: `*` = every default-enabled one, `foo` enables, `-foo` disables;
    None means `["*"]`."""
    requested = list(requested) if requested else ["*"]
    names: list[str] = []
    disabled = {ALIASES.get(r[1:], r[1:]) for r in requested if r.startswith("-")}
    explicit = [ALIASES.get(r, r) for r in requested if r != "*" and not r.startswith("-")]
    for r in explicit:
        if r not in CONTROLLERS:
            raise ValueError(f"{r!r} is not in the list of known controllers: {sorted(CONTROLLERS)}")
    if "*" in requested:
        for name in CONTROLLERS:
            if name == "garbage-collector-controller" and not config.enable_garbage_collector:
                continue
            if controller_class(name).enabled_by_default:
                names.append(name)
    for r in explicit:
        if r not in names:
            names.append(r)
    return [n for n in names if n not in disabled]


class ServiceAccountCredentials:
    """Clients acting as kube-system ServiceAccounts (upstream's SAControllerClientBuilder): the account is
    created if missing, a token requested through `serviceaccounts/<name>/token`, and renewed at 80% of its
    lifetime. The TLS context trusts the cluster CA only, so the token (not a client certificate) is who
    the API server sees."""

    def __init__(self, root: ApiClient, config: ControllerManagerConfig) -> None:
        self.root = root
        self.config = config
        self.clients: dict[str, ApiClient] = {}
        self._tasks: list[asyncio.Task] = []
        self._sa_rt = Registry().get("", "v1", "serviceaccounts")

    async def _token(self, name: str) -> str:
        ns = self.config.lease_namespace
        try:
            await self.root.create(self._sa_rt, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                 "metadata": {"name": name}}, ns)
        except ClientError as e:
            if not e.is_already_exists:
                raise
        review = await self.root.create_subresource(self._sa_rt, ns, name, "token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": self.config.service_account_token_seconds}})
        return review["status"]["token"]

    def _ssl_context(self) -> ssl.SSLContext | None:
        ca = self.config.ca_bundle()
        base = self.root.ssl_context
        if base is None or not ca:
            return base
        ctx = ssl.create_default_context(cadata=ca)
        ctx.check_hostname = base.check_hostname
        ctx.verify_mode = base.verify_mode
        return ctx

    async def client_for(self, name: str) -> ApiClient:
        if name in self.clients:
            return self.clients[name]
        token = await self._token(name)
        client = ApiClient(self.root.server_url, self._ssl_context(), token=token,
                           user_agent=f"{self.root.user_agent}/{name}")
        self.clients[name] = client
        self._tasks.append(asyncio.create_task(self._renew(name, client), name=f"token-{name}"))
        return client

    async def _renew(self, name: str, client: ApiClient) -> None:
        period = self.config.service_account_token_seconds * 0.8
        while True:
            await asyncio.sleep(period)
            try:
                token = await self._token(name)
            except (ClientError, OSError, TimeoutError) as e:
                log.warning("renewing the token of %s failed: %s", name, getattr(e, "message", e))
                period = 10.0
                continue
            period = self.config.service_account_token_seconds * 0.8
            header = f"Bearer {token}"
            client.token = token
            # ApiClient has no token setter: its default headers feed the next session, the live session's
            # default headers the requests from now on (informer watches keep their connections)
            client._headers["Authorization"] = header
            if client._session is not None and not client._session.closed:
                client._session.headers["Authorization"] = header

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()


class ControllerManager:
    """The enabled controllers sharing one informer factory; `run(stop)` until `stop` is set (or cancelled)."""

    def __init__(self, client: ApiClient, config: ControllerManagerConfig,
                 controllers: list[str] | None = None, informers: SharedInformerFactory | None = None) -> None:
        self.client = client
        self.config = config
        self.shared_informers = informers  # a process-wide factory (run() uses a scoped view of it)
        self.names = resolve_controllers(controllers, config)
        self.ctx: ControllerContext | None = None
        self.controllers: dict[str, Controller] = {}

    async def run(self, stop: asyncio.Event | None = None) -> None:
        shared = self.shared_informers
        self.ctx = ctx = ControllerContext(self.client, self.config,
                                           informers=shared.scoped() if shared is not None else None)
        creds = ServiceAccountCredentials(self.client, self.config)
        tasks: list[asyncio.Task] = []
        try:
            for name in self.names:
                cls = controller_class(name)
                own = ctx
                account = cls.service_account or SERVICE_ACCOUNTS.get(name, "")
                if self.config.use_service_account_credentials and account:
                    try:
                        own = ctx.with_client(await creds.client_for(account))
                    except (ClientError, OSError, TimeoutError) as e:
                        log.warning("%s: no ServiceAccount credentials (%s); using the manager's own", name,
                                    getattr(e, "message", e))
                self.controllers[name] = cls(own)
            ctx.informers.start()
            for name, ctrl in self.controllers.items():
                tasks.append(asyncio.create_task(self._run_one(name, ctrl), name=name))
                if self.config.controller_start_interval:
                    await asyncio.sleep(self.config.controller_start_interval)
            log.info("controller-manager: started %s", ", ".join(self.controllers))
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()
        finally:
            for ctrl in self.controllers.values():
                ctrl.queue.shutdown()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for ctrl in self.controllers.values():
                with contextlib.suppress(Exception):
                    await ctrl.stop()
            await ctx.informers.stop()
            for rec in ctx.recorders:
                with contextlib.suppress(Exception):
                    await asyncio.shield(rec.stop(timeout=2.0))
            await creds.close()

    async def _run_one(self, name: str, ctrl: Controller) -> None:
        try:
            await ctrl.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("controller %s stopped with an error", name)

    def controller(self, name: str) -> Controller:
        return self.controllers[ALIASES.get(name, name)]


async def run_controller_manager(client: ApiClient, *, stop: asyncio.Event, config: ControllerManagerConfig,
                                 controllers: list[str] | None = None,
                                 informers: SharedInformerFactory | None = None) -> None:
    """Run the controller-manager until `stop` is set.

    With `informers` (a factory shared with other components of the process) the controllers read through
    a scoped view of it: losing the lease removes their handlers and leaves the shared caches running.

    With `config.leader_elect` (the default) the controllers run only while this process holds the Lease
    `kube-system/kube-controller-manager`; losing it stops them and the process contends again.  The Lease
    is released on the way out so another instance takes over at once."""
    resolve_controllers(controllers, config)  # fail fast on unknown names
    if not config.leader_elect:
        await ControllerManager(client, config, controllers, informers).run(stop)
        return
    identity = config.identity or default_identity()
    stop_wait = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            manager = ControllerManager(client, config, controllers, informers)
            elector = LeaderElector(client, config.lease_name, config.lease_namespace, identity,
                                    lease_duration=config.lease_duration, renew_deadline=config.renew_deadline,
                                    retry_period=config.retry_period,
                                    on_started_leading=lambda m=manager: m.run(stop))
            elect = asyncio.ensure_future(elector.run())
            await asyncio.wait({elect, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not elect.done():
                # leading: the controllers see `stop` too, wind down, and the elector releases the Lease
                await asyncio.wait({elect}, timeout=10.0 if elector.is_leader else 0)
            if not elect.done():
                elect.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await elect
            if not stop.is_set():
                log.warning("controller-manager: leadership lost; contending again")
                await asyncio.sleep(config.retry_period)
    finally:
        stop_wait.cancel()
