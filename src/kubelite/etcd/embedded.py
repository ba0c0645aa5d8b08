"""Wiring the local member into a control plane: start it, point the API server's store at it."""

from __future__ import annotations

import logging

from .member import EtcdAdmin, LocalMember, MemberConfig, remember_cluster, start_local_member

log = logging.getLogger("kubelite.etcd")


async def start_embedded(data_dir: str, name: str, advertise: str, config) -> LocalMember:
    """Start (or adopt) this machine's member and set `config` (a ServerConfig) to keep the state in it."""
    member = await start_local_member(MemberConfig(data_dir=data_dir, name=name, advertise=advertise))
    async with EtcdAdmin(member.endpoints, member.pki) as admin:
        members = await admin.members()
    remember_cluster(member.cfg, members)
    # the local member first: the API server of a stacked control plane reads and writes there (kubeadm's
    # topology); the others only when it is gone
    others = [u for m in members for u in m.get("clientURLs") or [] if u != member.cfg.client_url]
    config.etcd_servers = [member.cfg.local_client_url, *others]
    config.etcd_cafile = member.pki.ca_file
    config.etcd_certfile = member.pki.apiserver_cert
    config.etcd_keyfile = member.pki.apiserver_key
    log.info("etcd member %s ready (%d members)", name, len(members))
    return member
