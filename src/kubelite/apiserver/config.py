"""API server settings; every timing is configurable, upstream's defaults are the defaults."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServerConfig:
    data_dir: str
    bind_address: str = "127.0.0.1"
    port: int = 6443
    kubernetes_version: str = "1.33"
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: tuple[int, int] = (30000, 32767)
    token_auth_file: str | None = None
    anonymous_auth: bool = True
    # --authorization-mode: Node,RBAC as upstream; AlwaysAllow only for a lab
    authorization_modes: list[str] = field(default_factory=lambda: ["Node", "RBAC"])
    # ServiceAccount tokens: the first issuer signs, all are accepted; audiences default to the first issuer
    service_account_issuers: list[str] = field(
        default_factory=lambda: ["https://kubernetes.default.svc.cluster.local"])
    api_audiences: list[str] = field(default_factory=list)
    service_account_max_token_expiration: float = 0.0  # seconds; 0 = no cap
    service_account_extend_token_expiration: bool = True
    bootstrap_token_clean_interval: float = 5.0  # how often expired bootstrap-token Secrets are removed
    # watch: upstream's --min-request-timeout is 1800 s; a watch without timeoutSeconds lasts 1–2× that
    min_request_timeout: float = 1800.0
    bookmark_interval: float = 60.0
    # history kept for watch resume; upstream compacts etcd every 5 minutes
    compaction_interval: float = 300.0  # upstream's --etcd-compaction-interval
    # the store: SQLite under data_dir unless etcd endpoints are given (storage/etcd.py)
    etcd_servers: list[str] = field(default_factory=list)  # --etcd-servers / --datastore-endpoint
    etcd_prefix: str = "/registry"
    etcd_cafile: str | None = None
    etcd_certfile: str | None = None
    etcd_keyfile: str | None = None
    extra_sans: list[str] = field(default_factory=list)
    # --advertise-address: where the `kubernetes` Service's endpoint and the kubeconfigs point ("" = the bind
    # address, or the default-route address when bound to every address)
    advertise_address: str = ""
    kubeconfig_server: str = ""  # server URL written into admin.kubeconfig ("" = the local URL)
    # DefaultTolerationSeconds: --default-not-ready-toleration-seconds, --default-unreachable-toleration-seconds
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300
    write_kubeconfig: str | None = None
    fsync: bool = True
    kubelet_certificate_authority: str | None = None  # verify kubelets' serving certs with this CA
    # audit (apiserver/audit.py): logging needs both the policy and the path, as upstream; "-" is stdout
    audit_policy_file: str | None = None
    audit_log_path: str | None = None
    audit_log_maxage: int = 0  # days; 0 keeps backups whatever their age
    audit_log_maxbackup: int = 0  # 0 keeps every backup
    audit_log_maxsize: int = 0  # megabytes before rotation; 0 means lumberjack's 100
    audit_log_format: str = "json"
    # encryption at rest (storage/encryption.py): an EncryptionConfiguration file
    encryption_provider_config: str | None = None
    # admission (apiserver/admission): upstream's default-on plugins, plus/minus these names
    admission_enable: list[str] = field(default_factory=list)  # --enable-admission-plugins
    admission_disable: list[str] = field(default_factory=list)  # --disable-admission-plugins
    pod_security: dict | None = None  # PodSecurityConfiguration body (defaults, exemptions)
    resource_quota_sync_period: float = 30.0  # full quota recalculation; deletes trigger one at once
