"""`kubelite etcd-snapshot save|restore`'s flags. Kept apart from snapshot.py, which imports the etcd and
certificate machinery: building the `kubelite` command's parser must not load them into every process (the
node agent's idle memory)."""

from __future__ import annotations

SQLITE_BUMP = 1_000_000_000  # upstream's recommended bump: more writes than any watcher could have seen
ETCD_BUMP = 10_000


def _snapshot():
    from . import snapshot

    return snapshot


def add_snapshot_parser(sub, default_data_dir: str) -> None:
    snap = sub.add_parser("etcd-snapshot", help="save or restore a snapshot of the cluster state (k3s's etcd-snapshot)",
                          description="Save a snapshot of the cluster's store (SQLite or etcd), or restore one into a "
                                      "fresh data dir.")
    snap_sub = snap.add_subparsers(dest="snapshot_command", metavar="COMMAND")
    snap.set_defaults(func=lambda a: (snap.print_help(), 2)[1])
    save_p = snap_sub.add_parser("save", help="save a snapshot", description="Save a snapshot of the store.")
    save_p.add_argument("path", nargs="?", default="",
                        help="file to write (default: <data-dir>/snapshots/<name>-<node>-<unix time>)")
    save_p.add_argument("--name", default="on-demand", help="snapshot name prefix (default: on-demand)")
    for p in (save_p,):
        p.add_argument("--data-dir", default=default_data_dir, help="data dir (default: %(default)s)")
        p.add_argument("--etcd-servers", "--datastore-endpoint", dest="etcd_servers", default="",
                       help="an external etcd instead of this machine's store")
        p.add_argument("--etcd-cafile", default=None)
        p.add_argument("--etcd-certfile", default=None)
        p.add_argument("--etcd-keyfile", default=None)
    save_p.set_defaults(func=lambda a: _snapshot()._save_cmd(a))
    restore_p = snap_sub.add_parser("restore", help="restore a snapshot into a fresh data dir",
                                    description="Restore a snapshot into a fresh data dir; start the cluster on it with "
                                                "`kubelite up`/`init` (SQLite) or `kubelite init --cluster-init` (etcd).")
    restore_p.add_argument("path", help="the snapshot file")
    restore_p.add_argument("--data-dir", default=default_data_dir, help="fresh data dir (default: %(default)s)")
    restore_p.add_argument("--bump-revision", type=int, default=None, metavar="N",
                           help=f"raise the revision by N and mark the older ones compacted, so watchers never see "
                                f"resourceVersions go back (default: {SQLITE_BUMP} for SQLite, {ETCD_BUMP} for etcd)")
    restore_p.add_argument("--node-name", default="", help="etcd: the member's name (default: the host name)")
    restore_p.add_argument("--advertise-address", default="", metavar="IP",
                           help="etcd: the address the member advertises (default: the default-route address)")
    restore_p.set_defaults(func=lambda a: _snapshot()._restore_cmd(a))
