"""The `kubelite` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

DEFAULT_PORT = 6443


def default_data_dir() -> str:
    env = os.environ.get("KUBELITE_DATA_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/kubelite"
    return os.path.join(os.path.expanduser("~"), ".kubelite")


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=default_data_dir(),
                   help="where the store, certificates and kubeconfig live (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTPS port of the API server (default: 6443)")
    p.add_argument("--bind-address", default="127.0.0.1",
                   help="address the API server listens on (default: 127.0.0.1; 0.0.0.0 opens it to the network)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="CIDR the Service cluster IPs come from (default: %(default)s)")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="port range of NodePort Services (default: %(default)s)")
    p.add_argument("--token-auth-file", default=None,
                   help="static bearer tokens, upstream's CSV format: token,user,uid,\"group1,group2\"")
    p.add_argument("--anonymous-auth", default=None, choices=("true", "false"),
                   help="let requests without credentials in as system:anonymous (default: true; "
                        "false with --profile hardened)")
    p.add_argument("--profile", default="default", choices=("default", "hardened"),
                   help="hardened refuses AlwaysAllow, anonymous auth and --token-auth-file, as the CIS "
                        "benchmark asks (default: %(default)s)")
    p.add_argument("--service-account-issuer", action="append", default=[],
                   help="issuer of ServiceAccount tokens (repeatable; the first signs new tokens; "
                        "default: https://kubernetes.default.svc.cluster.local)")
    p.add_argument("--api-audiences", default="",
                   help="comma-separated audiences of the API (default: the first service account issuer)")
    p.add_argument("--service-account-max-token-expiration", default="0", metavar="DURATION",
                   help="longest lifetime a TokenRequest gets, e.g. 48h (default: no limit)")
    p.add_argument("--service-account-extend-token-expiration", default="true", choices=("true", "false"),
                   help="give pod-bound tokens asked for 3607 s a one-year lifetime (default: true)")
    p.add_argument("--authorization-mode", default="Node,RBAC",
                   help="ordered authorizers: Node, RBAC, AlwaysAllow, AlwaysDeny (default: Node,RBAC); "
                        "AlwaysAllow lets everyone do everything and is for a lab only")
    p.add_argument("--kubelet-certificate-authority", default=None, metavar="FILE",
                   help="verify kubelets' serving certificates with this CA (default: not verified, as upstream; "
                        "`up` verifies its own node's, which it issues from the cluster CA)")
    p.add_argument("--tls-san", action="append", default=[],
                   help="extra name or address for the serving certificate (repeatable)")
    p.add_argument("--write-kubeconfig", default=None,
                   help="also write the admin kubeconfig to this path (e.g. ~/.kube/config)")
    p.add_argument("--kubernetes-version", default="1.33", help="Kubernetes API version served (default: 1.33)")
    p.add_argument("--etcd-compaction-interval", type=float, default=300.0, metavar="SECONDS",
                   help="how often old store history is compacted (default: 300)")
    p.add_argument("--etcd-servers", "--datastore-endpoint", dest="etcd_servers", default="", metavar="URLS",
                   help="keep the cluster state in etcd at these comma-separated URLs, e.g. "
                        "https://a:2379,https://b:2379 (default: SQLite under --data-dir)")
    p.add_argument("--etcd-cafile", default=None, metavar="FILE", help="CA that signed etcd's serving certificate")
    p.add_argument("--etcd-certfile", default=None, metavar="FILE", help="client certificate for etcd")
    p.add_argument("--etcd-keyfile", default=None, metavar="FILE", help="client key for etcd")
    p.add_argument("--etcd-prefix", default="/registry", help="prefix of every key in etcd (default: %(default)s)")
    p.add_argument("--enable-admission-plugins", default="", metavar="NAMES",
                   help="admission plugins to enable in addition to the default-on ones (comma-separated)")
    p.add_argument("--disable-admission-plugins", default="", metavar="NAMES",
                   help="default-on admission plugins to disable (comma-separated)")
    p.add_argument("--admission-control-config-file", default=None, metavar="FILE",
                   help="an AdmissionConfiguration file (PodSecurity defaults and exemptions)")
    p.add_argument("--audit-policy-file", default=None, metavar="FILE",
                   help="audit.k8s.io/v1 Policy; with --audit-log-path, requests are audit-logged")
    p.add_argument("--audit-log-path", default=None, metavar="PATH",
                   help="JSON-lines audit log file ('-' = stdout), mode 0600, rotated by size")
    p.add_argument("--audit-log-maxage", type=int, default=0, metavar="DAYS",
                   help="delete rotated audit logs older than this (default: 0, keep)")
    p.add_argument("--audit-log-maxbackup", type=int, default=0, metavar="N",
                   help="rotated audit logs to keep (default: 0, all)")
    p.add_argument("--audit-log-maxsize", type=int, default=0, metavar="MB",
                   help="rotate the audit log at this size in megabytes (default: 0, meaning 100)")
    p.add_argument("--audit-log-format", default="json", choices=("json",), help="audit log format (json)")
    p.add_argument("--encryption-provider-config", default=None, metavar="FILE",
                   help="EncryptionConfiguration (apiserver.config.k8s.io/v1): encrypt resources at rest")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests and internals")


def _security_files_config(args: argparse.Namespace) -> dict:
    return {"audit_policy_file": args.audit_policy_file, "audit_log_path": args.audit_log_path,
            "audit_log_maxage": args.audit_log_maxage, "audit_log_maxbackup": args.audit_log_maxbackup,
            "audit_log_maxsize": args.audit_log_maxsize, "audit_log_format": args.audit_log_format,
            "encryption_provider_config": args.encryption_provider_config}


def _admission_config(args: argparse.Namespace) -> dict:
    from .apiserver import admission
    from .apiserver.admission.config_file import load_admission_config

    enable = admission.parse_plugin_list(args.enable_admission_plugins)
    disable = admission.parse_plugin_list(args.disable_admission_plugins)
    try:
        admission.enabled_plugins(enable, disable)
        pod_security = load_admission_config(args.admission_control_config_file).get("PodSecurity") \
            if args.admission_control_config_file else None
    except (ValueError, OSError) as e:
        raise SystemExit(f"kubelite: error: {e}") from None
    return {"admission_enable": enable, "admission_disable": disable, "pod_security": pod_security}


def _check_hardened(args: argparse.Namespace, authorization_modes: list[str]) -> None:
    # CIS 1.2.1 (anonymous auth), 1.2.2 (token file), 1.2.6-1.2.8 (authorization mode)
    if "AlwaysAllow" in authorization_modes:
        raise SystemExit("kubelite: error: --profile hardened: --authorization-mode must not include AlwaysAllow")
    if args.anonymous_auth == "true":
        raise SystemExit("kubelite: error: --profile hardened: --anonymous-auth must be false")
    if args.token_auth_file:
        raise SystemExit("kubelite: error: --profile hardened: --token-auth-file is not allowed")


def _etcd_config(args: argparse.Namespace) -> dict:
    def path(value: str | None) -> str | None:
        return os.path.abspath(os.path.expanduser(value)) if value else None

    servers = [u.strip() for u in (getattr(args, "etcd_servers", "") or "").split(",") if u.strip()]
    files = {"etcd_cafile": path(getattr(args, "etcd_cafile", None)),
             "etcd_certfile": path(getattr(args, "etcd_certfile", None)),
             "etcd_keyfile": path(getattr(args, "etcd_keyfile", None))}
    if bool(files["etcd_certfile"]) != bool(files["etcd_keyfile"]):
        raise SystemExit("kubelite: error: --etcd-certfile and --etcd-keyfile go together")
    if not servers and any(files.values()):
        raise SystemExit("kubelite: error: --etcd-cafile/--etcd-certfile/--etcd-keyfile need --etcd-servers")
    return {"etcd_servers": servers, "etcd_prefix": getattr(args, "etcd_prefix", "/registry"), **files}


def _config(args: argparse.Namespace):
    from .apiserver.config import ServerConfig

    try:
        low, high = (int(x) for x in args.service_node_port_range.split("-", 1))
    except ValueError:
        raise SystemExit(f"kubelite: error: --service-node-port-range must look like 30000-32767, "
                         f"got {args.service_node_port_range!r}") from None
    from .api import schemas

    version = args.kubernetes_version.removeprefix("v")
    version = ".".join(version.split(".")[:2])
    if not schemas.available(version):
        raise SystemExit(f"kubelite: error: Kubernetes version {args.kubernetes_version} is not available "
                         f"(the installed kubernetes-validate has no schemas for it)")
    write_kubeconfig = os.path.expanduser(args.write_kubeconfig) if args.write_kubeconfig else None
    from .apiserver.serviceaccount_tokens import DEFAULT_ISSUER, parse_go_duration

    try:
        max_token = parse_go_duration(args.service_account_max_token_expiration)
    except ValueError as e:
        raise SystemExit(f"kubelite: error: --service-account-max-token-expiration: {e}") from None
    if max_token and max_token < 600:
        raise SystemExit("kubelite: error: --service-account-max-token-expiration must be at least 10m")
    authn = {"service_account_issuers": list(args.service_account_issuer) or [DEFAULT_ISSUER],
             "api_audiences": [a.strip() for a in args.api_audiences.split(",") if a.strip()],
             "service_account_max_token_expiration": max_token,
             "service_account_extend_token_expiration": args.service_account_extend_token_expiration == "true"}
    from .apiserver.authz import parse_modes

    try:
        authorization_modes = parse_modes(args.authorization_mode)
    except ValueError as e:
        raise SystemExit(f"kubelite: error: --authorization-mode: {e}") from None
    if args.profile == "hardened":
        _check_hardened(args, authorization_modes)
    if "AlwaysAllow" in authorization_modes:
        print("*" * 78 + "\nWARNING: --authorization-mode includes AlwaysAllow: every request, anonymous ones "
              "included,\nis allowed to do anything. Use this only in a throw-away lab.\n" + "*" * 78,
              file=sys.stderr, flush=True)
    return ServerConfig(
        authorization_modes=authorization_modes,
        data_dir=os.path.abspath(os.path.expanduser(args.data_dir)), bind_address=args.bind_address,
        port=args.port, kubernetes_version=version, service_cluster_ip_range=args.service_cluster_ip_range,
        service_node_port_range=(low, high), token_auth_file=args.token_auth_file,
        anonymous_auth=(args.anonymous_auth or ("false" if args.profile == "hardened" else "true")) == "true",
        extra_sans=list(args.tls_san),
        write_kubeconfig=write_kubeconfig, compaction_interval=args.etcd_compaction_interval, **authn,
        **_etcd_config(args),
        kubelet_certificate_authority=_kubelet_ca(args),
        **_admission_config(args), **_security_files_config(args))


def _kubelet_ca(args: argparse.Namespace) -> str | None:
    """--kubelet-certificate-authority; `kubelite up` with a real local node issues that kubelet's serving
    certificate from the cluster CA, so it verifies it by default."""
    explicit = getattr(args, "kubelet_certificate_authority", None)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if getattr(args, "command", "") == "up" and getattr(args, "node_runtime", "") in ("auto", "runc"):
        runtime = args.node_runtime
        if runtime == "auto":
            from .doctor import real_node_possible

            runtime = "runc" if real_node_possible()[0] else "simulated"
        if runtime == "runc":
            return os.path.join(os.path.abspath(os.path.expanduser(args.data_dir)), "pki", "ca.crt")
    return None


async def _serve(args: argparse.Namespace, what: str) -> int:
    from .apiserver.server import StartupError, start

    began = time.monotonic()
    config = _config(args)
    if hasattr(args, "default_not_ready_toleration_seconds"):
        from .profiles.flags import apply_toleration_flags

        apply_toleration_flags(config, args)
    if what == "up":
        from .profiles.controlplane import check_cluster_cidr, with_node_lifecycle_admission

        check_cluster_cidr(args)
        if not args.disable_controller_manager:
            with_node_lifecycle_admission(config)
        if not hold_node_lock(args, config.data_dir, what):
            return 1
    try:
        server = await start(config)
    except StartupError as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - began
    print(f"kubelite {what}: API server ready at {server.url} in {elapsed:.2f}s", file=sys.stderr)
    print(f"kubelite {what}: kubeconfig: {server.kubeconfig}", file=sys.stderr)
    print(f"kubelite {what}:   export KUBECONFIG={server.kubeconfig}", file=sys.stderr)
    components = None
    mark: asyncio.Task | None = None
    if what == "up":
        from .launcher import start_components
        from .profiles.controlplane import component_settings

        listen = config.bind_address if config.bind_address not in ("0.0.0.0", "::") else "0.0.0.0"
        try:
            settings = component_settings(args, config.data_dir, listen=listen, node_ip=args.node_ip)
        except ValueError as e:
            print(f"kubelite: error: {e}", file=sys.stderr)
            await server.stop()
            return 1
        if args.single_process or (os.cpu_count() or 1) < 2:
            components = await start_components(config.data_dir, server.url, settings)
            running = ", ".join(components.tasks) or "nothing else"
        else:
            # a second process for the control loops and nodes, so the API server keeps a core of its own
            components = await _ComponentsProcess.start(config.data_dir, server.url, settings)
            running = "controllers, scheduler, nodes and add-ons in process " + str(components.pid)
        print(f"kubelite {what}: running {running}", file=sys.stderr)
        if settings.node_runtime != "none":
            mark = asyncio.create_task(_mark_control_plane(server.kubeconfig, settings.node_name, taint=False))
        if settings.simulated_nodes:
            print(f"kubelite {what}: {settings.simulated_nodes} extra simulated node(s): pods run through their "
                  f"states without processes", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print(f"kubelite {what}: stopping", file=sys.stderr)
    if mark is not None:
        mark.cancel()
    if components is not None:
        await components.shutdown()
    await server.stop()
    return 0


def _real_node_wanted(runtime: str) -> bool:
    if runtime == "auto":
        from .doctor import real_node_possible

        return real_node_possible()[0]
    return runtime in ("runc", "crun")


def hold_node_lock(args: argparse.Namespace, data_dir: str, what: str) -> bool:
    """This network namespace's real-node lock, held for the life of the process (profiles/lock.py); False,
    with the reason printed, when another kubelite holds it."""
    runtime = getattr(args, "node_runtime", None) or getattr(args, "runtime", "auto")
    if not _real_node_wanted(runtime):
        return True
    from .profiles import lock

    try:
        lock.acquire(data_dir, what)
    except lock.NodeLockError as e:
        print(f"kubelite {what}: error: {e}", file=sys.stderr)
        return False
    except OSError as e:
        print(f"kubelite {what}: warning: cannot take the node lock in {lock.LOCK_DIR}: {e}", file=sys.stderr)
    return True


async def _mark_control_plane(kubeconfig: str, node_name: str, *, taint: bool) -> None:
    """kubeadm's mark-control-plane phase for this machine's node (bootstrap/controlplane.py)."""
    import socket

    from .bootstrap.controlplane import mark_control_plane
    from .client import ApiClient

    client = ApiClient.from_kubeconfig(kubeconfig)
    try:
        await mark_control_plane(client, node_name or socket.gethostname().lower(), taint=taint)
    finally:
        await client.close()


class _ComponentsProcess:
    """`kubelite up`'s components in a child process (`kubelite components`), stopped with SIGTERM."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pid = proc.pid

    @classmethod
    async def start(cls, data_dir: str, server_url: str, settings) -> _ComponentsProcess:
        import dataclasses
        import json

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kubelite.cli", "components", "--data-dir", data_dir, "--server", server_url,
            "--settings", json.dumps(dataclasses.asdict(settings)))
        return cls(proc)

    async def shutdown(self, timeout: float = 15.0) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def _components_main(args: argparse.Namespace) -> int:
    import json

    from .heap import tune_collector
    from .launcher import ComponentSettings, start_components

    settings = ComponentSettings(**json.loads(args.settings))
    tune_collector()
    components = await start_components(args.data_dir, args.server, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await components.shutdown()
    return 0


def _add_component_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", required=True, help="kubeconfig with this component's credentials")
    p.add_argument("-v", "--verbose", action="store_true", help="log internals")


def node_settings_from_args(args: argparse.Namespace, kubeconfig: str, data_dir: str):
    """A joined machine's node (`join`, `agent`) from the node flags (profiles/flags.py)."""
    from .profiles.node import NodeSettings

    return NodeSettings(kubeconfig=kubeconfig, name=args.node_name, data_dir=data_dir, runtime=args.runtime,
                        node_ip=args.node_ip, kubelet_address=args.kubelet_address, kubelet_port=args.kubelet_port,
                        registries=args.registries, container_log_max_size=args.container_log_max_size,
                        container_log_max_files=args.container_log_max_files, flannel_backend=args.flannel_backend,
                        cluster_cidr=args.cluster_cidr or "10.244.0.0/16", cluster_dns=args.cluster_dns or "10.96.0.10",
                        cluster_domain=args.cluster_domain or "cluster.local", proxy=not args.disable_kube_proxy,
                        lease_duration_seconds=args.node_lease_duration_seconds, cni_conf_dir=args.cni_conf_dir,
                        apiserver_lb_port=args.apiserver_lb_port,
                        cleanup_on_exit=args.cleanup_on_exit)


async def _component(args: argparse.Namespace) -> int:
    """`kubelite controller-manager|scheduler|agent`: one component, talking to an API server elsewhere."""
    from .client import ApiClient

    client = ApiClient.from_kubeconfig(args.kubeconfig, user_agent=f"{args.command}/v1.33.1 (linux) kubelite")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.command == "controller-manager":
            from .controllers.manager import ControllerManagerConfig, run_controller_manager

            kw: dict = {"extra": {"local-path-provisioner": {"storage_path": os.path.abspath(os.path.expanduser(
                args.default_local_storage_path))}}}
            if args.root_ca_file:
                kw["root_ca_file"] = args.root_ca_file
            config = ControllerManagerConfig(**kw)
            await run_controller_manager(client, stop=stop, config=config)
        elif args.command == "scheduler":
            from .scheduler import SchedulerConfig, run_scheduler

            await run_scheduler(client, stop=stop, config=SchedulerConfig())
        elif args.simulated > 0:
            from .kubelet.agent import run_simulated_nodes

            await run_simulated_nodes(client, count=args.simulated, stop=stop, prefix=args.node_prefix)
        else:
            from .profiles.node import run_node

            await run_node(node_settings_from_args(args, args.kubeconfig,
                                                   os.path.abspath(os.path.expanduser(args.data_dir))), stop)
    finally:
        await client.close()
    return 0


async def _status(args: argparse.Namespace) -> int:
    """Health of the API server, the leader-elected components and the nodes, as the API shows them."""
    from datetime import UTC, datetime

    from .api.resources import Registry
    from .apiserver.server import admin_kubeconfig_path
    from .client import ApiClient, ClientError

    path = admin_kubeconfig_path(os.path.abspath(os.path.expanduser(args.data_dir)))
    if not os.path.exists(path):
        print(f"kubelite: error: no cluster in {args.data_dir} (no {path})", file=sys.stderr)
        return 1
    client = ApiClient.from_kubeconfig(path)
    registry = Registry()
    rows = []
    try:
        try:
            ready = await client.request("GET", "/readyz", raw=True)
            rows.append(("apiserver", "ok" if ready else "not ready", client.server_url))
        except (OSError, ClientError) as e:
            rows.append(("apiserver", "unreachable", str(e)))
            return _print_status(rows, 1)
        leases = registry.get("coordination.k8s.io", "v1", "leases")
        now = datetime.now(UTC)
        for name in ("kube-controller-manager", "kube-scheduler"):
            try:
                lease = await client.get(leases, "kube-system", name)
            except ClientError:
                rows.append((name, "not running", "no leader lease"))
                continue
            spec = lease.get("spec") or {}
            renewed = spec.get("renewTime")
            fresh = False
            if renewed:
                when = datetime.fromisoformat(renewed.replace("Z", "+00:00"))
                fresh = (now - when).total_seconds() <= spec.get("leaseDurationSeconds", 15)
            rows.append((name, "ok" if fresh else "not running", f"leader {spec.get('holderIdentity', '')}"))
        nodes = (await client.list(registry.get("", "v1", "nodes")))["items"]
        ready_nodes = sum(1 for n in nodes for c in (n.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Ready" and c.get("status") == "True")
        rows.append(("nodes", "ok" if nodes and ready_nodes == len(nodes) else "degraded" if nodes else "none",
                     f"{ready_nodes}/{len(nodes)} Ready"))
    finally:
        await client.close()
    return _print_status(rows, 0 if all(r[1] == "ok" for r in rows) else 1)


def _print_status(rows: list[tuple[str, str, str]], rc: int) -> int:
    width = max(len(r[0]) for r in rows) + 3
    print(f"{'COMPONENT':<{width}}{'STATUS':<14}DETAIL")
    for name, state, detail in rows:
        print(f"{name:<{width}}{state:<14}{detail}")
    return rc


def _run(coro) -> int:
    try:
        import uvloop  # type: ignore[import-not-found]

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _run_node_agent(args: argparse.Namespace) -> int:
    """`kubelite agent` with a real runtime: a long-lived process whose idle memory is the node's overhead
    (issue 5: <= 40 MiB).  It runs on asyncio's own loop, whose pure-Python code is loaded anyway, rather than
    uvloop (~1.6 MiB more resident, no faster here: the agent waits on runc and the API server), and with
    aiosignal's FrozenList in pure Python: the C++ build maps libstdc++ (~1.3 MiB) for short lists of callbacks."""
    if "frozenlist" not in sys.modules and "FROZENLIST_NO_EXTENSIONS" not in os.environ:
        os.environ["FROZENLIST_NO_EXTENSIONS"] = "1"
        try:
            import frozenlist  # noqa: F401
        finally:
            del os.environ["FROZENLIST_NO_EXTENSIONS"]  # not for runc, conmon, the CNI plugins …
    # asyncio reads TLS into a buffer of its own per connection, 256 KiB by default; the agent keeps several
    # open (its watches, requests, the kubelet API's clients), and reads of 64 KiB are plenty for their traffic
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, 64 * 1024)
    # its YAML files are read once at start-up: parsed by a child, PyYAML (~1 MiB) stays out of this process
    from .client import yamlfiles

    yamlfiles.parse_in_child([args.kubeconfig, args.registries or ""])
    return asyncio.run(_node_agent_main(args))


async def _node_agent_main(args: argparse.Namespace) -> int:
    if sys.version_info < (3, 12):
        # 3.11 waits for every child (runc, CNI plugins, probes' execs) in a thread of its own, and each thread
        # may take a malloc arena of its own; a pidfd per child in the event loop needs none (3.12's default)
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError):
            pass
        else:
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(asyncio.get_running_loop())
            asyncio.set_child_watcher(watcher)
    if not hold_node_lock(args, os.path.abspath(os.path.expanduser(args.data_dir)), "agent"):
        return 1
    return await _component(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubelite", description="A small, fast Kubernetes-compatible cluster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    up = sub.add_parser("up", help="start a cluster in the foreground (Ctrl-C stops it)",
                        description="Start everything kubelite has (API server, …) in the foreground.")
    _add_server_flags(up)
    from .profiles.controlplane import add_control_plane_flags

    add_control_plane_flags(up)
    server = sub.add_parser("server", help="run the API server alone", description="Run the API server alone.")
    _add_server_flags(server)
    cm = sub.add_parser("controller-manager", help="run the controllers against an API server",
                        description="Run the controller-manager alone (leader-elected through a Lease).")
    _add_component_flags(cm)
    cm.add_argument("--root-ca-file", default=None, help="CA bundle published as kube-root-ca.crt")
    cm.add_argument("--default-local-storage-path", default="/var/lib/kubelite/storage", metavar="DIR",
                    help="where the local-path provisioner puts PersistentVolumes on the nodes "
                         "(default: %(default)s)")
    sch = sub.add_parser("scheduler", help="run the scheduler against an API server",
                         description="Run the scheduler alone (leader-elected through a Lease).")
    _add_component_flags(sch)
    agent = sub.add_parser("agent", help="run node agents against an API server",
                           description="Run node agents (kubelets) against an API server.")
    _add_component_flags(agent)
    agent.add_argument("--simulated", type=int, default=0, metavar="N", help="run N simulated nodes")
    from .profiles.flags import add_node_flags

    add_node_flags(agent, joined=True)
    agent.add_argument("--data-dir", default=os.path.join(default_data_dir(), "agent"),
                       help="where images, pod state and logs live (default: %(default)s)")
    agent.add_argument("--node-prefix", default="sim-node-", help="name prefix of simulated nodes")
    doc = sub.add_parser("doctor", help="check (and --fix) what real containers need on this machine",
                         description="Check root, runc, conmon, CNI plugins, iptables and sysctls; --fix installs "
                                     "the missing Debian packages and sets the sysctls.")
    doc.add_argument("--fix", action="store_true", help="install what is missing (root)")
    st = sub.add_parser("status", help="show the health of a cluster's components",
                        description="Show the health of the API server, controllers, scheduler and nodes.")
    st.add_argument("--data-dir", default=default_data_dir(), help="data dir (default: %(default)s)")
    rs = sub.add_parser("reset", help="take this machine out of the cluster and remove what kubelite made (kubeadm reset)",
                        description="Stop the kubelite running on this machine, delete its Node when administrator "
                                    "credentials are here, remove its containers, pod network namespaces, CNI state, "
                                    "cgroups, the pod network's device and routes, the KUBE-* iptables rules, and "
                                    "the data dir.")
    rs.add_argument("--data-dir", default=default_data_dir(), help="data dir (default: %(default)s)")
    rs.add_argument("-f", "--force", action="store_true", help="reset without asking")
    rs.add_argument("--node-name", default="", help="the node to remove (default: the one in the data dir)")
    kp = sub.add_parser("kubeconfig-path", help="print the admin kubeconfig's path",
                        description="Print the path of the admin kubeconfig that `kubelite up` writes.")
    kp.add_argument("--data-dir", default=default_data_dir(), help="data dir (default: %(default)s)")
    from .kubelet.images.cli import add_images_parser

    add_images_parser(sub, default_data_dir())
    from .bootstrap.cli import add_bootstrap_parsers

    add_bootstrap_parsers(sub, default_data_dir(), _add_server_flags)  # init, token, join
    from .lab.cli import add_lab_parser

    add_lab_parser(sub)  # attack-and-defense lab (issue 15)
    from .etcd.snapshot_cli import add_snapshot_parser

    add_snapshot_parser(sub, default_data_dir())  # etcd-snapshot save|restore
    comp = sub.add_parser("components")  # `kubelite up`'s second process; no help: not listed
    comp.add_argument("--data-dir", required=True)
    comp.add_argument("--server", required=True)
    comp.add_argument("--settings", required=True)
    args = parser.parse_args(argv)
    if args.command in ("images", "token", "join", "etcd-snapshot", "lab"):
        return args.func(args)
    if args.command == "init":
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        return args.func(args)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "kubeconfig-path":
        from .apiserver.server import admin_kubeconfig_path

        print(admin_kubeconfig_path(os.path.abspath(os.path.expanduser(args.data_dir))))
        return 0
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "status":
        return _run(_status(args))
    if args.command == "components":
        return _run(_components_main(args))
    if args.command == "reset":
        from .profiles.reset import confirm, reset

        data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
        if not args.force and not confirm(data_dir):
            print("[reset] Aborted", file=sys.stderr)
            return 1
        _run(reset(data_dir, node_name=args.node_name))
        return 0
    if args.command == "doctor":
        from .doctor import run as doctor

        return doctor(args.fix)
    try:
        if args.command == "agent" and not args.simulated:
            return _run_node_agent(args)
        if args.command in ("controller-manager", "scheduler", "agent"):
            return _run(_component(args))
        return _run(_serve(args, args.command))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
