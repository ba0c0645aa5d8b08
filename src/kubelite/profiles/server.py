"""The API server's flags and the `ServerConfig` built from them, shared by `up`, `server` and `init` (and
`join --control-plane`, which parses its control plane's settings with them)."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_PORT = 6443


def default_data_dir() -> str:
    env = os.environ.get("KUBELITE_DATA_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/kubelite"
    return os.path.join(os.path.expanduser("~"), ".kubelite")


def add_server_flags(p: argparse.ArgumentParser) -> None:
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
    from ..apiserver import admission
    from ..apiserver.admission.config_file import load_admission_config

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


def server_config(args: argparse.Namespace):
    from ..apiserver.config import ServerConfig

    try:
        low, high = (int(x) for x in args.service_node_port_range.split("-", 1))
    except ValueError:
        raise SystemExit(f"kubelite: error: --service-node-port-range must look like 30000-32767, "
                         f"got {args.service_node_port_range!r}") from None
    from ..api import schemas

    version = args.kubernetes_version.removeprefix("v")
    version = ".".join(version.split(".")[:2])
    if not schemas.available(version):
        raise SystemExit(f"kubelite: error: Kubernetes version {args.kubernetes_version} is not available "
                         f"(the installed kubernetes-validate has no schemas for it)")
    write_kubeconfig = os.path.expanduser(args.write_kubeconfig) if args.write_kubeconfig else None
    from ..apiserver.serviceaccount_tokens import DEFAULT_ISSUER, parse_go_duration

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
    from ..apiserver.authz import parse_modes

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
            from ..doctor import real_node_possible

            runtime = "runc" if real_node_possible()[0] else "simulated"
        if runtime == "runc":
            return os.path.join(os.path.abspath(os.path.expanduser(args.data_dir)), "pki", "ca.crt")
    return None
