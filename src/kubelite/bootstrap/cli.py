"""The `kubelite init`, `kubelite token create|list|delete` and `kubelite join` commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable

DEFAULT_TOKEN_TTL = "24h0m0s"


def add_bootstrap_parsers(sub, default_data_dir: str, add_server_flags: Callable[[argparse.ArgumentParser], None]
                          ) -> None:
    init = sub.add_parser("init", help="start a control plane other machines can join (kubeadm init)",
                          description="Start the control plane on this machine, bound to an address other machines "
                                      "reach, and print the command that joins a node to it.")
    add_server_flags(init)
    init.set_defaults(bind_address=None, func=_init)
    add_init_flags(init)

    token = sub.add_parser("token", help="manage bootstrap tokens (kubeadm token)",
                           description="Create, list and delete the bootstrap tokens nodes join with.")
    token_sub = token.add_subparsers(dest="token_command", metavar="COMMAND")
    token.set_defaults(func=_token_help(token))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default=default_data_dir, help="data dir of the cluster (default: %(default)s)")
        p.add_argument("--kubeconfig", default=None,
                       help="kubeconfig to talk to the cluster with (default: <data-dir>/admin.kubeconfig)")

    create = token_sub.add_parser("create", help="create a bootstrap token",
                                  description="Create a bootstrap token and print it (or the join command).")
    common(create)
    create.add_argument("token", nargs="?", default=None, help="the token to create (default: a random one)")
    create.add_argument("--ttl", default=DEFAULT_TOKEN_TTL,
                        help="lifetime of the token, e.g. 2h; 0 never expires (default: 24h)")
    create.add_argument("--print-join-command", action="store_true",
                        help="print the whole `kubelite join` command instead of the token")
    create.add_argument("--description", default="", help="a human-friendly description of the token")
    create.add_argument("--certificate-key", default="", metavar="HEX",
                        help="with --print-join-command: print the command that joins a control-plane machine, "
                             "with this key (from `kubelite init phase upload-certs --upload-certs`)")
    create.add_argument("--groups", default="system:bootstrappers:kubeadm:default-node-token",
                        help="extra groups the token authenticates as (comma-separated)")
    create.add_argument("--usages", default="signing,authentication",
                        help="what the token may be used for: signing, authentication (comma-separated)")
    create.set_defaults(func=lambda a: _run(_token_create(a)))
    listing = token_sub.add_parser("list", help="list bootstrap tokens", description="List bootstrap tokens.")
    common(listing)
    listing.set_defaults(func=lambda a: _run(_token_list(a)))
    delete = token_sub.add_parser("delete", help="delete bootstrap tokens",
                                  description="Delete bootstrap tokens (by id or whole token).")
    common(delete)
    delete.add_argument("tokens", nargs="+", metavar="TOKEN", help="token id or <id>.<secret>")
    delete.set_defaults(func=lambda a: _run(_token_delete(a)))

    join = sub.add_parser("join", help="join this machine to a cluster as a node (kubeadm join)",
                          description="Join this machine to a cluster: discover and pin its CA with a bootstrap "
                                      "token, get a node certificate through a CSR, and run the node agent.")
    join.add_argument("endpoint", help="API server address, host:port")
    join.add_argument("--token", required=True, help="bootstrap token, <id>.<secret>")
    join.add_argument("--discovery-token-ca-cert-hash", action="append", default=[], metavar="sha256:HEX",
                      help="pin of the cluster CA's public key (repeatable)")
    join.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true",
                      help="trust the CA cluster-info names without a pin (unsafe)")
    join.add_argument("--data-dir", default=default_data_dir,
                      help="where the node's kubeconfig and state are written (default: %(default)s)")
    from kubelite.profiles.flags import add_node_flags

    add_node_flags(join, joined=True)
    join.add_argument("--control-plane", action="store_true",
                      help="join as another control-plane machine: an etcd member, an API server, controllers and "
                           "scheduler next to the node (needs --certificate-key)")
    join.add_argument("--certificate-key", default="", metavar="HEX",
                      help="the key that decrypts the control plane's shared keys (printed by `kubelite init "
                           "--upload-certs`)")
    join.add_argument("--apiserver-advertise-address", default="", metavar="IP",
                      help="with --control-plane: the address this machine's API server and etcd member advertise "
                           "(default: the default-route address)")
    join.add_argument("--apiserver-bind-port", type=int, default=6443, metavar="PORT",
                      help="with --control-plane: the port of this machine's API server (default: 6443)")
    join.add_argument("--tls-bootstrap-timeout", type=float, default=300.0, metavar="SECONDS",
                      help="how long to wait for the node's CSR to be approved and signed (default: 300)")
    join.add_argument("-v", "--verbose", action="store_true", help="log internals")
    join.set_defaults(func=lambda a: _run(_join(a)))


def add_init_flags(init: argparse.ArgumentParser) -> None:
    """`kubelite init`'s own flags (after the server flags); `join --control-plane` parses its control plane's
    settings with them too."""
    init.add_argument("--apiserver-advertise-address", default="", metavar="IP",
                      help="address the API server advertises: the `kubernetes` Service's endpoint, this node's "
                           "InternalIP, the kubeconfigs (default: this host's default-route address); where it "
                           "listens is --bind-address (default on init: every address)")
    init.add_argument("--control-plane-endpoint", default="", metavar="HOST:PORT",
                      help="stable address of the control plane (a DNS name or load balancer) put in cluster-info "
                           "and the join command")
    init.add_argument("--service-cidr", default="", metavar="CIDR",
                      help="range of Service cluster IPs (default: 10.96.0.0/12)")
    init.add_argument("--cluster-domain", "--service-dns-domain", dest="cluster_domain", default="cluster.local",
                      help="DNS domain of Services (default: cluster.local)")
    init.add_argument("--token", default=None, help="the bootstrap token to create (default: a random one)")
    init.add_argument("--token-ttl", default=DEFAULT_TOKEN_TTL,
                      help="lifetime of the bootstrap token, e.g. 2h; 0 never expires (default: 24h)")
    from kubelite.profiles.controlplane import add_control_plane_flags

    add_control_plane_flags(init)
    init.add_argument("--cluster-init", action="store_true",
                      help="keep the cluster state in an etcd member started on this machine (k3s's flag), so "
                           "more control-plane machines can join it (`kubelite join --control-plane`)")
    init.add_argument("--upload-certs", action="store_true",
                      help="upload the control plane's shared keys, encrypted, to Secret kube-system/kubeadm-certs "
                           "and print the key that decrypts them (for `kubelite join --control-plane`)")
    init.add_argument("--certificate-key", default="", metavar="HEX",
                      help="the key --upload-certs encrypts with (default: a new random one)")
    init.add_argument("phase", nargs="*", default=[], metavar="phase upload-certs",
                      help="`kubelite init phase upload-certs --upload-certs`: only upload the keys again, on a "
                           "running control-plane machine, and print the new certificate key")


def _run(coro) -> int:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130


def _token_help(parser: argparse.ArgumentParser):
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2
    return show


def _init(args: argparse.Namespace) -> int:
    from .init import run_init

    if args.phase:
        if args.phase != ["phase", "upload-certs"]:
            print(f"kubelite: error: unknown init phase {' '.join(args.phase)!r} (known: phase upload-certs)",
                  file=sys.stderr)
            return 1
        return _run(_upload_certs_phase(args))

    return _run(run_init(args))


async def _upload_certs_phase(args: argparse.Namespace) -> int:
    from kubelite.client import ClientError

    from .uploadcerts import CertsError, upload_certs

    if not args.upload_certs:
        print("[upload-certs] Skipping phase. Please see --upload-certs", file=sys.stderr)
        return 0
    args.kubeconfig = None
    client = _admin_client(args)
    try:
        key = await upload_certs(client, os.path.join(os.path.abspath(os.path.expanduser(args.data_dir)), "pki"),
                                 args.certificate_key or None)
    except (CertsError, ClientError) as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    print("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
    print("[upload-certs] Using certificate key:")
    print(key)
    return 0


def _admin_client(args: argparse.Namespace):
    from kubelite.client import ApiClient

    path = args.kubeconfig or os.path.join(os.path.abspath(os.path.expanduser(args.data_dir)), "admin.kubeconfig")
    if not os.path.exists(path):
        raise SystemExit(f"kubelite: error: no kubeconfig at {path} (pass --data-dir or --kubeconfig)")
    return ApiClient.from_kubeconfig(path)


async def _token_create(args: argparse.Namespace) -> int:
    from kubelite.apiserver.serviceaccount_tokens import parse_go_duration
    from kubelite.client import ClientError

    from .tokens import TokenError, create_token

    try:
        ttl = parse_go_duration(args.ttl)
    except ValueError as e:
        print(f"kubelite: error: --ttl: {e}", file=sys.stderr)
        return 1
    usages = tuple(sorted(u.strip() for u in args.usages.split(",") if u.strip()))
    unknown = set(usages) - {"signing", "authentication"}
    if unknown:
        print(f"kubelite: error: unknown usage(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    client = _admin_client(args)
    try:
        token = await create_token(client, args.token, ttl, description=args.description, groups=groups,
                                   usages=usages)
        if args.print_join_command:
            command = await _join_command(client, token)
            if args.certificate_key:
                command += f" --control-plane --certificate-key {args.certificate_key}"
            print(command)
        else:
            print(token)
    except (TokenError, ValueError) as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        return 1
    except ClientError as e:
        print(f"kubelite: error: {e.message}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    return 0


async def _join_command(client, token: str) -> str:
    """The join command for `token`: endpoint and CA from cluster-info (else the admin kubeconfig)."""
    from kubelite.client import ClientError

    from . import jws
    from .clusterinfo import CONFIGMAPS, parse_cluster_info_kubeconfig
    from .init import join_command, wait_for_signature

    server = client.server_url
    ca_pem = None
    try:
        cm = await client.get(CONFIGMAPS, jws.PUBLIC_NAMESPACE, jws.CLUSTER_INFO)
        server, ca_pem = parse_cluster_info_kubeconfig((cm.get("data") or {}).get(jws.KUBECONFIG_KEY) or "")
    except (ClientError, ValueError):
        print(f"kubelite: warning: no usable {jws.PUBLIC_NAMESPACE}/{jws.CLUSTER_INFO} (was the cluster started with "
              f"`kubelite init`?); nodes cannot join until it exists", file=sys.stderr)
    if ca_pem is None:
        ca_pem = _kubeconfig_ca(client)
    elif not await wait_for_signature(client, token.split(".")[0], 15.0):
        print("kubelite: warning: cluster-info is not signed with the new token yet", file=sys.stderr)
    return join_command(server.removeprefix("https://"), token, jws.ca_hash(ca_pem))


def _kubeconfig_ca(client) -> bytes:
    ctx = client.ssl_context
    if ctx is None:
        raise ValueError("the kubeconfig names no cluster CA")
    ders = ctx.get_ca_certs(binary_form=True)
    if not ders:
        raise ValueError("the kubeconfig names no cluster CA")
    import ssl

    return ssl.DER_cert_to_PEM_cert(ders[0]).encode()


async def _token_list(args: argparse.Namespace) -> int:
    from kubelite.client import ClientError

    from .tokens import format_token_list, list_tokens

    client = _admin_client(args)
    try:
        sys.stdout.write(format_token_list(await list_tokens(client)))
    except ClientError as e:
        print(f"kubelite: error: {e.message}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    return 0


async def _token_delete(args: argparse.Namespace) -> int:
    from kubelite.client import ClientError

    from .tokens import TokenError, delete_token

    client = _admin_client(args)
    rc = 0
    try:
        for token in args.tokens:
            try:
                token_id = await delete_token(client, token)
                print(f'bootstrap token "{token_id}" deleted')
            except TokenError as e:
                print(f"kubelite: error: {e}", file=sys.stderr)
                rc = 1
            except ClientError as e:
                print(f"kubelite: error: {e.message}", file=sys.stderr)
                rc = 1
    finally:
        await client.close()
    return rc


async def _join(args: argparse.Namespace) -> int:
    import logging

    from kubelite.pki import certs
    from kubelite.pki.csr import subject
    from kubelite.profiles.lock import hold_node_lock

    from .join import JoinConfig, JoinError, join, kubeconfig_path

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    if args.control_plane:
        from .join_controlplane import run_join_control_plane

        return await run_join_control_plane(args, data_dir)
    if not hold_node_lock(args, data_dir, "join"):
        return 1
    cfg = JoinConfig(endpoint=args.endpoint, token=args.token, ca_cert_hashes=list(args.discovery_token_ca_cert_hash),
                     unsafe_skip_ca_verification=args.discovery_token_unsafe_skip_ca_verification,
                     node_name=args.node_name, data_dir=data_dir, tls_bootstrap_timeout=args.tls_bootstrap_timeout)
    path = kubeconfig_path(data_dir)
    node_name = args.node_name
    if os.path.exists(path):
        print(f"[preflight] {path} already exists: this node has joined before; starting its agent with it",
              flush=True)
        node_name = node_name or _node_of(path, certs, subject)
    else:
        try:
            path = await join(cfg)
        except JoinError as e:
            print(f"kubelite join: error: {e}", file=sys.stderr, flush=True)
            return 1
        node_name = node_name or _node_of(path, certs, subject)
        print(f"""
This node has joined the cluster:
* Certificate signing request was sent to apiserver and a response was received.
* The node agent runs as "{node_name}" with the new secure connection details ({path}).

Run 'kubectl get nodes' on the control-plane to see this node join the cluster.
""", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from kubelite.profiles.node import data_dir_of, node_settings_from_args, run_node

    args.node_name = node_name
    await _cluster_defaults(args, path)
    try:
        await run_node(node_settings_from_args(args, path, data_dir_of(data_dir)), stop)
    except (OSError, RuntimeError) as e:
        print(f"kubelite join: error: the node agent stopped: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _cluster_defaults(args: argparse.Namespace, kubeconfig: str) -> None:
    """The pod range, DNS address and domain `kubelite init` published (kubeadm-config, kubelet-config), where the
    user gave no flag of their own."""
    from kubelite.client import ApiClient, ClientError

    from .clusterconfig import read

    client = ApiClient.from_kubeconfig(kubeconfig)
    try:
        net = await read(client)
    except (ClientError, OSError) as e:
        print(f"kubelite join: warning: cannot read the cluster's configuration ({e}); using the defaults",
              file=sys.stderr, flush=True)
        net = None
    finally:
        await client.close()
    if net is not None:
        args.cluster_cidr = args.cluster_cidr or net.pod_subnet
        args.cluster_dns = args.cluster_dns or net.cluster_dns
        args.cluster_domain = args.cluster_domain or net.dns_domain


def _node_of(path: str, certs, subject) -> str:
    """The node name in the client certificate of a node kubeconfig (CN system:node:<name>)."""
    import base64

    import yaml

    with open(path) as f:
        config = yaml.safe_load(f)
    pem = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    cn, _ = subject(certs.load_cert(pem))
    return cn.removeprefix("system:node:")
