"""The `kubelite` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from .profiles.lock import hold_node_lock
from .profiles.node import node_settings_from_args
from .profiles.server import DEFAULT_PORT, add_server_flags, default_data_dir, server_config

__all__ = ["DEFAULT_PORT", "default_data_dir", "hold_node_lock", "main", "node_settings_from_args"]


async def _serve(args: argparse.Namespace, what: str) -> int:
    from .apiserver.server import StartupError, start

    began = time.monotonic()
    config = server_config(args)
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
    add_server_flags(up)
    from .profiles.controlplane import add_control_plane_flags

    add_control_plane_flags(up)
    server = sub.add_parser("server", help="run the API server alone", description="Run the API server alone.")
    add_server_flags(server)
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

    add_bootstrap_parsers(sub, default_data_dir(), add_server_flags)  # init, token, join
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
