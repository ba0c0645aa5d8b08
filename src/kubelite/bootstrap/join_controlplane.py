"""`kubelite join <endpoint> --control-plane --certificate-key <key>`: another control-plane machine, as kubeadm's
control-plane join with a stacked etcd.

1. Discovery exactly as a worker's join (the token's signature over cluster-info, the CA pin).
2. With the bootstrap token: the encrypted shared keys from Secret kube-system/kubeadm-certs (decrypted with the
   certificate key, which never travels through the cluster) and the ClusterConfiguration from
   kube-system/kubeadm-config. The cluster CA in them must be the pinned one.
3. etcd: this machine's certificates from the etcd CA, MemberAdd through the running members, then the local
   member starts with `--initial-cluster-state existing`.
4. The control plane: what `kubelite init` runs (API server on the new member, controller-manager, scheduler,
   this machine's node, marked control-plane), without publishing cluster-info or a token again.

A machine that has joined before (its etcd data exists) skips 1–3 and starts its control plane again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import yaml

from kubelite.client import ApiClient, ClientError
from kubelite.pki import certs

from .clusterconfig import KUBELITE_KEY
from .init import split_endpoint
from .join import JoinConfig, JoinError, check_join_config, default_node_name, discover, trusted_context
from .uploadcerts import CertsError, download, write_files

SAVED_CONFIG = "kubeadm-config.yaml"
MEMBER_ADD_TIMEOUT = 60.0


class ControlPlaneJoinError(Exception):
    pass


def _same_ca(files: dict[str, bytes], ca_pem: bytes) -> bool:
    try:
        return certs.spki_sha256(certs.load_cert(files["ca.crt"])) == certs.spki_sha256(certs.load_cert(ca_pem))
    except (KeyError, ValueError):
        return False


async def fetch_shared_keys(cfg: JoinConfig, certificate_key: str) -> dict[str, Any]:
    """Steps 1 and 2: writes the shared keys under <data_dir>/pki; returns the ClusterConfiguration."""
    token_id, token_secret = check_join_config(cfg)
    cfg.say(f"[discovery] Fetching kube-public/cluster-info from {cfg.url}")
    ca_pem = await discover(cfg, token_id, token_secret)
    client = ApiClient(cfg.url, trusted_context(ca_pem), token=cfg.token, user_agent="kubelite-join/v1.33.1")
    try:
        files, cluster_config = await download(client, certificate_key)
    except ClientError as e:
        raise ControlPlaneJoinError(f"{e.code} {e.reason}: {e.message}") from None
    finally:
        await client.close()
    if not _same_ca(files, ca_pem):
        raise ControlPlaneJoinError("the cluster CA in kubeadm-certs is not the pinned CA of cluster-info")
    pki_dir = os.path.join(cfg.data_dir, "pki")
    os.makedirs(cfg.data_dir, mode=0o700, exist_ok=True)
    write_files(pki_dir, files)
    cfg.say(f"[download-certs] Downloaded and decrypted {len(files)} files from Secret kube-system/kubeadm-certs "
            f"into {pki_dir}")
    with open(os.path.join(cfg.data_dir, SAVED_CONFIG), "w") as f:
        yaml.safe_dump(cluster_config, f, sort_keys=False)
    return cluster_config


async def add_etcd_member(data_dir: str, name: str, advertise: str, seeds: list[str], say) -> None:
    """Step 3 up to the start: MemberAdd through the running members; the local member's initial cluster is
    saved for its first start."""
    from kubelite.etcd.member import EtcdAdmin, EtcdError, LocalMember, MemberConfig, save_join_state

    cfg = MemberConfig(data_dir=data_dir, name=name, advertise=advertise)
    member = LocalMember.prepare(cfg)
    deadline = time.monotonic() + MEMBER_ADD_TIMEOUT
    while True:
        try:
            async with EtcdAdmin(seeds, member.pki) as admin:
                members = await admin.members()
                mine = [m for m in members if cfg.peer_url in (m.get("peerURLs") or [])]
                if not mine:  # a retried join may have added it already
                    say(f"[etcd] Adding member {name} ({cfg.peer_url}) to the etcd cluster")
                    _, members = await admin.add_member(cfg.peer_url)
            break
        except EtcdError as e:
            # etcd refuses a change while a member added a moment ago is not yet connected ("unhealthy cluster")
            if time.monotonic() >= deadline:
                raise ControlPlaneJoinError(f"cannot add an etcd member through {', '.join(seeds)}: {e}") from None
            await asyncio.sleep(1.0)
    unnamed = [m for m in members if not m.get("name") and cfg.peer_url not in (m.get("peerURLs") or [])]
    if unnamed:
        raise ControlPlaneJoinError(f"another etcd member ({unnamed[0].get('peerURLs')}) was added but has not "
                                    f"started: join control-plane machines one at a time")
    initial = ",".join(f"{m.get('name') or name}={(m.get('peerURLs') or [''])[0]}" for m in members)
    save_join_state(cfg, initial)


def _etcd_seeds(endpoint: str, cluster_config: dict[str, Any]) -> list[str]:
    host, _ = split_endpoint(endpoint, 6443)
    from kubelite.etcd.member import CLIENT_PORT, _url

    return [_url(host, CLIENT_PORT)]


def control_plane_args(args: argparse.Namespace, data_dir: str, advertise: str, node_name: str,
                       cluster_config: dict[str, Any]) -> argparse.Namespace:
    """`kubelite init`'s arguments for this machine's control plane, from the join flags and the cluster's
    ClusterConfiguration."""
    from kubelite.profiles.server import add_server_flags

    from .cli import add_init_flags

    p = argparse.ArgumentParser(prog="kubelite join --control-plane")
    add_server_flags(p)
    p.set_defaults(bind_address=None)
    add_init_flags(p)
    networking = cluster_config.get("networking") or {}
    runtime = {"crun": "runc"}.get(args.runtime, args.runtime)
    argv = ["--data-dir", data_dir, "--apiserver-advertise-address", advertise,
            "--port", str(args.apiserver_bind_port), "--node-name", node_name, "--node-runtime", runtime,
            "--node-ip", args.node_ip or advertise, "--kubelet-port", str(args.kubelet_port),
            "--flannel-backend", args.flannel_backend,
            "--node-lease-duration-seconds", str(args.node_lease_duration_seconds),
            "--container-log-max-size", args.container_log_max_size,
            "--container-log-max-files", str(args.container_log_max_files),
            "--service-cidr", networking.get("serviceSubnet") or "10.96.0.0/12",
            "--cluster-cidr", networking.get("podSubnet") or args.cluster_cidr,
            "--cluster-domain", networking.get("dnsDomain") or args.cluster_domain]
    if cluster_config.get("controlPlaneEndpoint"):
        argv += ["--control-plane-endpoint", cluster_config["controlPlaneEndpoint"]]
    disable = (cluster_config.get(KUBELITE_KEY) or {}).get("disable")
    if disable:
        argv += ["--disable", str(disable)]
    if args.registries:
        argv += ["--registries", args.registries]
    if args.disable_kube_proxy:
        argv.append("--disable-kube-proxy")
    if args.cleanup_on_exit:
        argv.append("--cleanup-on-exit")
    if args.verbose:
        argv.append("--verbose")
    parsed = p.parse_args(argv)
    parsed.command = "init"
    parsed.joining_control_plane = True
    return parsed


async def run_join_control_plane(args: argparse.Namespace, data_dir: str) -> int:
    from kubelite.api.netaddr import default_route_address
    from kubelite.etcd.member import EtcdError

    from .init import run_init

    def say(line: str) -> None:
        print(line, flush=True)

    if not args.certificate_key:
        print("kubelite join: error: --control-plane needs --certificate-key (printed by `kubelite init "
              "--upload-certs`)", file=sys.stderr)
        return 1
    advertise = args.apiserver_advertise_address or default_route_address()
    node_name = args.node_name or default_node_name()
    saved = os.path.join(data_dir, SAVED_CONFIG)
    try:
        if os.path.isdir(os.path.join(data_dir, "etcd", "data", "member")) and os.path.exists(saved):
            say(f"[preflight] {data_dir} holds this machine's etcd member: starting its control plane again")
            with open(saved) as f:
                cluster_config = yaml.safe_load(f) or {}
        else:
            cfg = JoinConfig(endpoint=args.endpoint, token=args.token,
                             ca_cert_hashes=list(args.discovery_token_ca_cert_hash),
                             unsafe_skip_ca_verification=args.discovery_token_unsafe_skip_ca_verification,
                             node_name=node_name, data_dir=data_dir)
            cluster_config = await fetch_shared_keys(cfg, args.certificate_key)
            if "external" in (cluster_config.get("etcd") or {}):
                raise ControlPlaneJoinError("this cluster keeps its state in an external etcd: start another "
                                            "`kubelite init --etcd-servers ...` with the same CA instead")
            await add_etcd_member(data_dir, node_name, advertise, _etcd_seeds(args.endpoint, cluster_config), say)
    except (JoinError, CertsError, ControlPlaneJoinError, EtcdError, OSError) as e:
        print(f"kubelite join: error: {e}", file=sys.stderr, flush=True)
        return 1
    return await run_init(control_plane_args(args, data_dir, advertise, node_name, cluster_config))
