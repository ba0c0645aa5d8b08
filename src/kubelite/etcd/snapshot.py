"""`kubelite etcd-snapshot save|restore` (k3s's command names), for both stores.

save: SQLite — an online backup (sqlite3's backup API: a consistent copy while the server writes); etcd — the
  snapshot API through `etcdctl snapshot save` against this machine's member (or --etcd-servers).
restore: into a fresh data dir (refused when it holds a store). Watchers that saw revisions written after the
  snapshot must never see resourceVersions go back, so the restored store's revision is raised by
  --bump-revision and everything below it is marked compacted (as `etcdutl snapshot restore --bump-revision
  --mark-compacted`): old watches and lists answer 410 Gone and informers list again. SQLite takes any bump at
  once; etcd 3.4 has no such flag, so the bump is written (one transaction per revision) before compacting.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys

from .member import (
    CLIENT_PORT,
    EtcdAdmin,
    EtcdError,
    LocalMember,
    MemberConfig,
    etcd_dir,
    etcdctl_binary,
    start_local_member,
)
from .pki import EtcdPKI
from .snapshot_cli import ETCD_BUMP, SQLITE_BUMP  # the flags' defaults live with the flags

SQLITE_MAGIC = b"SQLite format 3\x00"
BUMP_KEY = b"/registry/kubelite.io/restore-bump"


class SnapshotError(Exception):
    pass


def sqlite_path(data_dir: str) -> str:
    return os.path.join(data_dir, "state.db")


def backend_of(data_dir: str, etcd_servers: list[str]) -> str:
    if etcd_servers or os.path.isdir(os.path.join(etcd_dir(data_dir), "data")):
        return "etcd"
    if os.path.exists(sqlite_path(data_dir)):
        return "sqlite"
    raise SnapshotError(f"no store in {data_dir} (neither state.db nor etcd/data) and no --etcd-servers")


def save_sqlite(data_dir: str, path: str) -> None:
    source = sqlite3.connect(f"file:{sqlite_path(data_dir)}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(path)
        try:
            source.backup(target, pages=1024)
        finally:
            target.close()
    finally:
        source.close()


def save_etcd(path: str, endpoint: str, ca: str | None, cert: str | None, key: str | None) -> None:
    etcdctl = etcdctl_binary()
    if etcdctl is None:
        raise SnapshotError("etcdctl is not installed: apt-get install etcd-client")
    argv = [etcdctl, "--endpoints", endpoint, "--dial-timeout", "3s", "--command-timeout", "60s"]
    for flag, value in (("--cacert", ca), ("--cert", cert), ("--key", key)):
        if value:
            argv += [flag, value]
    r = subprocess.run([*argv, "snapshot", "save", path], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ETCDCTL_API": "3"})
    if r.returncode != 0:
        raise SnapshotError(f"etcdctl snapshot save: {(r.stderr or r.stdout).strip()}")


def save(data_dir: str, path: str, *, etcd_servers: list[str] | None = None, ca: str | None = None,
         cert: str | None = None, key: str | None = None) -> str:
    """Write a snapshot of the store of `data_dir` (or of the etcd at `etcd_servers`) to `path`; the backend."""
    backend = backend_of(data_dir, etcd_servers or [])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if backend == "sqlite":
        save_sqlite(data_dir, path)
    else:
        if not etcd_servers:
            pki = EtcdPKI(os.path.join(data_dir, "pki"))
            etcd_servers, ca, cert, key = ([f"https://127.0.0.1:{CLIENT_PORT}"], pki.ca_file, pki.client_cert,
                                           pki.client_key)
        save_etcd(path, etcd_servers[0], ca, cert, key)
    os.chmod(path, 0o600)
    return backend


def kind_of_file(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    return "sqlite" if head == SQLITE_MAGIC else "etcd"


def _refuse_existing(data_dir: str) -> None:
    if os.path.exists(sqlite_path(data_dir)) or os.path.isdir(os.path.join(etcd_dir(data_dir), "data")):
        raise SnapshotError(f"{data_dir} already holds a store: restore into a fresh data dir (or `kubelite reset` "
                            f"this one first)")


def restore_sqlite(path: str, data_dir: str, bump: int = SQLITE_BUMP) -> int:
    """The restored store's new revision."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    target = sqlite_path(data_dir)
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db = sqlite3.connect(target)
    try:
        source.backup(db)
        with db:
            revision = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0] + bump
            db.execute("UPDATE meta SET value = ? WHERE name IN ('revision', 'compacted')", (revision,))
    finally:
        db.close()
        source.close()
    os.chmod(target, 0o600)
    return revision


async def _bump_etcd(member: LocalMember, bump: int, parallel: int = 64) -> int:
    key = base64.b64encode(BUMP_KEY).decode()
    async with EtcdAdmin(member.endpoints, member.pki, timeout=30) as admin:
        remaining = bump
        value = base64.b64encode(b"1").decode()

        async def worker(n: int) -> None:
            for _ in range(n):
                await admin.call("/v3/kv/put", {"key": key, "value": value})

        share, extra = divmod(remaining, parallel)
        await asyncio.gather(*(worker(share + (1 if i < extra else 0)) for i in range(parallel)))
        answer = await admin.call("/v3/kv/deleterange", {"key": key})
        revision = int(answer["header"]["revision"])
        await admin.call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


async def restore_etcd(path: str, data_dir: str, name: str, advertise: str, bump: int = ETCD_BUMP, *,
                       client_port: int = CLIENT_PORT, peer_port: int = 2380, metrics_port: int = 2381) -> int:
    """Restore a one-member cluster (more members join it with `kubelite join --control-plane`); the new
    revision."""
    etcdctl = etcdctl_binary()
    if etcdctl is None:
        raise SnapshotError("etcdctl is not installed: apt-get install etcd-client")
    cfg = MemberConfig(data_dir=data_dir, name=name, advertise=advertise, client_port=client_port,
                       peer_port=peer_port, metrics_port=metrics_port)
    os.makedirs(cfg.dir, mode=0o700, exist_ok=True)
    r = subprocess.run([etcdctl, "snapshot", "restore", path, "--data-dir", cfg.member_dir, "--name", name,
                        "--initial-cluster", f"{name}={cfg.peer_url}", "--initial-advertise-peer-urls", cfg.peer_url],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "ETCDCTL_API": "3"})
    if r.returncode != 0:
        raise SnapshotError(f"etcdctl snapshot restore: {(r.stderr or r.stdout).strip()}")
    member = await start_local_member(cfg)
    try:
        return await _bump_etcd(member, bump) if bump else 0
    finally:
        member.stop()


def _save_cmd(args: argparse.Namespace) -> int:
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    path = args.path or os.path.join(data_dir, "snapshots",
                                     f"{args.name}-{socket.gethostname()}-{int(dt.datetime.now().timestamp())}")
    servers = [s for s in args.etcd_servers.split(",") if s]
    try:
        backend = save(data_dir, path, etcd_servers=servers, ca=args.etcd_cafile, cert=args.etcd_certfile,
                       key=args.etcd_keyfile)
    except (SnapshotError, sqlite3.Error, OSError) as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        return 1
    print(f"Snapshot of the {backend} store saved to {path}")
    return 0


def _restore_cmd(args: argparse.Namespace) -> int:
    from ..api.netaddr import default_route_address

    data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    try:
        _refuse_existing(data_dir)
        kind = kind_of_file(args.path)
        if kind == "sqlite":
            revision = restore_sqlite(args.path, data_dir, SQLITE_BUMP if args.bump_revision is None
                                      else args.bump_revision)
        else:
            name = args.node_name or socket.gethostname().lower().split(".")[0]
            revision = asyncio.run(restore_etcd(args.path, data_dir, name,
                                                args.advertise_address or default_route_address(),
                                                ETCD_BUMP if args.bump_revision is None else args.bump_revision))
    except (SnapshotError, EtcdError, sqlite3.Error, OSError) as e:
        print(f"kubelite: error: {e}", file=sys.stderr)
        return 1
    print(f"Restored the {kind} snapshot {args.path} into {data_dir} (revision now {revision}); start the cluster "
          f"on it with " + ("`kubelite up` or `kubelite init`" if kind == "sqlite" else "`kubelite init --cluster-init`"))
    return 0
