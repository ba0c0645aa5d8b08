"""`kubelite init`: the control plane on this machine, reachable by other machines, ready for `kubelite join`.

Like `kubelite up` (API server, controllers, scheduler, add-ons), but bound by default to every address
(`--apiserver-advertise-address` picks one), with the control-plane endpoint and the advertise address in the
serving certificate, then, as kubeadm's bootstrap-token phase: `kube-public/cluster-info` published with the
endpoint and CA, a fresh 24 h bootstrap token, and — once the bootstrap signer has signed cluster-info with
it — the kubeconfig hint and the `kubelite join …` command printed on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
import time

from kubelite.client import ApiClient, ClientError
from kubelite.pki.certs import spki_sha256

from . import clusterconfig, jws
from .clusterinfo import CONFIGMAPS, publish_cluster_info
from .join import default_node_name
from .tokens import INIT_DESCRIPTION, TokenError, create_token

SIGNATURE_WAIT = 30.0


def split_endpoint(endpoint: str, default_port: int) -> tuple[str, int]:
    """(host, port) of `host[:port]` (IPv6 in brackets)."""
    text = endpoint.removeprefix("https://").rstrip("/")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def join_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def join_command(endpoint: str, token: str, ca_pem_hash: str) -> str:
    return f"kubelite join {endpoint} --token {token} --discovery-token-ca-cert-hash {ca_pem_hash}"


async def wait_for_signature(client: ApiClient, token_id: str, timeout: float = SIGNATURE_WAIT) -> bool:
    """Whether cluster-info carries the token's signature within `timeout` (the bootstrap signer's work)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ClientError):
            cm = await client.get(CONFIGMAPS, jws.PUBLIC_NAMESPACE, jws.CLUSTER_INFO)
            if (cm.get("data") or {}).get(jws.SIGNATURE_PREFIX + token_id):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


def _prepare(args: argparse.Namespace) -> tuple[str, str]:
    """Bind address and advertise address, as kubeadm: the API server listens on --bind-address (default: every
    address) and advertises --apiserver-advertise-address (default: the default-route address); fills in
    --tls-san and the service range."""
    from kubelite.api.netaddr import advertised, default_route_address

    if args.bind_address is None:
        args.bind_address = "0.0.0.0"
    advertise = args.apiserver_advertise_address or ""
    if not advertise:
        advertise = advertised(args.bind_address) if args.bind_address not in ("0.0.0.0", "::") \
            else default_route_address()
    if args.service_cidr:
        args.service_cluster_ip_range = args.service_cidr
    sans = list(args.tls_san)
    sans.append(advertise)
    if args.control_plane_endpoint:
        sans.append(split_endpoint(args.control_plane_endpoint, args.port)[0])
    ips, names = set(), set()
    for san in sans:
        try:
            ips.add(str(ipaddress.ip_address(san.strip("[]"))))
        except ValueError:
            names.add(san)
    args.tls_san = sorted(ips)  # the server's --tls-san takes addresses
    if names:
        # DNS names (apiserver.demo) go into the serving certificate now; later starts keep the names it has
        from kubelite.pki.ca import ensure_cluster_pki

        first_ip = str(ipaddress.ip_network(args.service_cluster_ip_range, strict=False)[1])
        ensure_cluster_pki(os.path.abspath(os.path.expanduser(args.data_dir)), hostnames=sorted(names),
                           addresses=sorted(ips), service_ip=first_ip)
    return args.bind_address, advertise


def _print_summary(data_dir_kubeconfig: str, command: str, token_ttl: float, certificate_key: str = "") -> None:
    ttl = "never expires" if not token_ttl else f"expires in {int(token_ttl // 3600)}h" if token_ttl >= 3600 else \
        f"expires in {int(token_ttl)}s"
    print(f"""
Your Kubernetes control-plane has initialized successfully!

To start using your cluster, you need to run the following as a regular user:

  mkdir -p $HOME/.kube
  cp -i {data_dir_kubeconfig} $HOME/.kube/config

Alternatively, you can run:

  export KUBECONFIG={data_dir_kubeconfig}

Then you can join any number of worker nodes by running the following on each of them (the token {ttl};
`kubelite token create --print-join-command` makes a new one):

{command}
""", flush=True)
    if certificate_key:
        print(f"""You can now join any number of control-plane machines (each runs an etcd member, an API server, the
controllers and the scheduler) by running the following on each of them:

{command} --control-plane --certificate-key {certificate_key}

Please note that the certificate-key gives access to cluster sensitive data, keep it secret!
As a safeguard, uploaded-certs will be deleted in two hours; if necessary, you can use
`kubelite init phase upload-certs --upload-certs` to reload certs afterward.
""", flush=True)


async def run_init(args: argparse.Namespace) -> int:
    from kubelite.apiserver.server import StartupError, start
    from kubelite.launcher import start_components
    from kubelite.profiles.controlplane import (
        check_cluster_cidr,
        component_settings,
        with_node_lifecycle_admission,
    )
    from kubelite.profiles.flags import apply_toleration_flags
    from kubelite.profiles.lock import hold_node_lock
    from kubelite.profiles.server import server_config

    from .controlplane import UNTAINT_HINT

    try:
        token_ttl = parse_ttl(args.token_ttl)
    except ValueError as e:
        print(f"kubelite: error: --token-ttl: {e}", file=sys.stderr)
        return 1
    check_cluster_cidr(args)
    bind, advertise = _prepare(args)
    config = server_config(args)
    apply_toleration_flags(config, args)
    if not args.disable_controller_manager:
        with_node_lifecycle_admission(config)
    port = config.port
    endpoint = args.control_plane_endpoint or join_endpoint(advertise, port)
    host, _ = split_endpoint(endpoint, port)
    endpoint = join_endpoint(host, split_endpoint(endpoint, port)[1])
    # as kubeadm's admin.conf: the control-plane endpoint, else the advertised address
    config.advertise_address = advertise
    config.kubeconfig_server = f"https://{endpoint}"
    listen = bind if bind not in ("0.0.0.0", "::") else "0.0.0.0"
    node_ip = args.node_ip or advertise
    try:
        settings = component_settings(args, config.data_dir, listen=listen, node_ip=node_ip)
    except ValueError as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        return 1
    if not hold_node_lock(args, config.data_dir, "init"):
        return 1
    joining = getattr(args, "joining_control_plane", False)
    member = None
    if getattr(args, "cluster_init", False) or joining:
        from kubelite.etcd.embedded import start_embedded
        from kubelite.etcd.member import EtcdError

        if config.etcd_servers:
            print("kubelite: error: --cluster-init runs etcd here: drop --etcd-servers/--datastore-endpoint",
                  file=sys.stderr)
            return 1
        try:
            member = await start_embedded(config.data_dir, settings.node_name or default_node_name(), advertise,
                                          config)
        except EtcdError as e:
            print(f"kubelite: error: {e}", file=sys.stderr)
            return 1
        print(f"[etcd] member {member.cfg.name} serving at {member.cfg.client_url} (peers: {member.cfg.peer_url}), "
              f"data in {member.cfg.member_dir}", file=sys.stderr, flush=True)
    began = time.monotonic()
    try:
        server = await start(config)
    except StartupError as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        if member is not None:
            member.stop()
        return 1
    print(f"kubelite init: API server ready at https://{join_endpoint(advertise, port)} (bound to {bind}) in "
          f"{time.monotonic() - began:.2f}s", file=sys.stderr)
    components = await start_components(config.data_dir, server.url, settings)
    client = ApiClient.from_kubeconfig(server.kubeconfig)
    client.server_url = server.url  # the endpoint may be a name only the other machines resolve
    rc = 0
    mark: asyncio.Task | None = None
    try:
        if settings.node_runtime != "none":
            from .controlplane import mark_control_plane

            mark = asyncio.create_task(mark_control_plane(client, settings.node_name or default_node_name(),
                                                          taint=True, exclude_from_lb=True))
        if joining:
            _print_joined_summary(server.kubeconfig, node_ip)
        else:
            await publish_cluster_info(client, f"https://{endpoint}", server.pki.ca_cert_pem)
            certificate_key = await _upload_phases(args, client, config, server.pki.dir, settings.dns_service_ip)
            try:
                token = await create_token(client, args.token, token_ttl, description=INIT_DESCRIPTION)
            except TokenError as e:
                print(f"kubelite: error: {e}", file=sys.stderr)
                rc = 1
            if certificate_key is None:
                rc = 1
            if rc == 0:
                if not await wait_for_signature(client, token.split(".")[0]):
                    print("kubelite init: WARNING: cluster-info is not signed with the new token yet (is the "
                          "bootstrap-signer-controller running?)", file=sys.stderr)
                command = join_command(endpoint, token, spki_sha256(server.pki.ca_cert))
                _print_summary(server.kubeconfig, command, token_ttl, certificate_key)
                if mark is not None:
                    print(f"[mark-control-plane] Marking the node as control-plane and tainting it NoSchedule, as "
                          f"kubeadm does; to run ordinary pods on it too: {UNTAINT_HINT}\n", flush=True)
        if rc == 0:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            print("kubelite init: stopping", file=sys.stderr)
    finally:
        if mark is not None:
            mark.cancel()
        await client.close()
    await components.shutdown()
    await server.stop()
    if member is not None:
        member.stop()
    return rc


async def _upload_phases(args: argparse.Namespace, client: ApiClient, config, pki_dir: str,
                         cluster_dns: str) -> str | None:
    """kubeadm's upload-config (always) and upload-certs (with --upload-certs) phases: the certificate key ("" when
    not uploaded), None on failure."""
    from .uploadcerts import CertsError, upload_certs

    try:
        await clusterconfig.publish(client, clusterconfig.ClusterNetwork(
            pod_subnet=args.cluster_cidr, service_subnet=config.service_cluster_ip_range,
            dns_domain=args.cluster_domain, cluster_dns=cluster_dns, control_plane_endpoint=args.control_plane_endpoint,
            bind_port=config.port,
            external_etcd=None if getattr(args, "cluster_init", False) else list(config.etcd_servers) or None),
            {"disable": args.disable} if args.disable else None)
        if not getattr(args, "upload_certs", False):
            return ""
        key = await upload_certs(client, pki_dir, args.certificate_key or None)
    except (CertsError, ClientError) as e:
        print(f"kubelite: error: uploading the cluster configuration: {e}", file=sys.stderr)
        return None
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace',
          file=sys.stderr, flush=True)
    return key


def _print_joined_summary(kubeconfig: str, address: str) -> None:
    print(f"""
This node has joined the cluster and a new control plane instance was created:

* A new etcd member was added to the local/stacked etcd cluster.
* The API server, controller-manager and scheduler run here ({address}).
* The node was registered and marked as control-plane.

To start administering your cluster from this node:

  export KUBECONFIG={kubeconfig}

Run 'kubectl get nodes' to see this node join the cluster.
""", flush=True)


def parse_ttl(text: str) -> float:
    """Seconds in a Go duration (`24h0m0s`, `2h`; `0` means never)."""
    from kubelite.apiserver.serviceaccount_tokens import parse_go_duration

    return parse_go_duration(text)
