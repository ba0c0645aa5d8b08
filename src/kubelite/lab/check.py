"""`kubelite lab check`: a kube-bench-like scorecard of a running cluster, for the CIS Kubernetes Benchmark
items that apply to kubelite.  Flags are read from the API server's command line (when it runs on this
machine), and everything that can be probed is probed for real: anonymous requests to the API server and the
kubelet, the read-only port, RBAC answers, namespaces' Pod Security labels, NetworkPolicies.

Each item: {"id", "title", "status": PASS|FAIL|WARN|INFO, "remediation"}; Manual items in the benchmark are
WARN when not met, as kube-bench reports them."""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import urllib.error
import urllib.request

import yaml

from .cluster import kubectl_binary

Item = dict[str, str]
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease"}


def _item(cid: str, title: str, ok: bool | None, remediation: dict[str, str], lang: str, *,
          manual: bool = False, detail: str = "") -> Item:
    status = "PASS" if ok else "INFO" if ok is None else "WARN" if manual else "FAIL"
    return {"id": cid, "title": title + (f" ({detail})" if detail else ""), "status": status,
            "remediation": "" if ok else remediation.get(lang) or remediation["en"]}


class _Cluster:
    def __init__(self, kubeconfig: str, data_dir: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.data_dir = data_dir
        with open(kubeconfig) as f:
            doc = yaml.safe_load(f)
        self.server = doc["clusters"][0]["cluster"]["server"]
        self.cache = os.path.join(os.path.dirname(os.path.abspath(kubeconfig)), ".lab-check-cache")

    def kubectl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([kubectl_binary(), "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache, *args],
                              capture_output=True, text=True, timeout=60)

    def get(self, *args: str) -> list[dict]:
        r = self.kubectl("get", *args, "-o", "json")
        return json.loads(r.stdout).get("items", []) if r.returncode == 0 and r.stdout else []

    def can(self, verb: str, resource: str, user: str, group: str) -> bool:
        r = self.kubectl("auth", "can-i", verb, resource, "-A", f"--as={user}", f"--as-group={group}")
        return r.stdout.strip() == "yes"


def _probe(url: str, token: str | None = None) -> int:
    """HTTP status of a GET (0: no connection)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0


def server_cmdline(data_dir: str | None) -> list[str] | None:
    """The command line of the `kubelite up|server` running on `data_dir`, if it runs here."""
    if not data_dir:
        return None
    want = os.path.abspath(data_dir)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if "kubelite.cli" not in " ".join(args[:3]) and not any(a.endswith("/kubelite") for a in args[:2]):
            continue
        if not ({"up", "server"} & set(args[:4])):
            continue
        for i, a in enumerate(args):
            value = a.split("=", 1)[1] if a.startswith("--data-dir=") else args[i + 1] if a == "--data-dir" and \
                i + 1 < len(args) else None
            if value and os.path.abspath(value) == want:
                return args
    return None


def _flag(cmdline: list[str], name: str) -> list[str]:
    out = []
    for i, a in enumerate(cmdline):
        if a == name and i + 1 < len(cmdline):
            out.append(cmdline[i + 1])
        elif a.startswith(name + "="):
            out.append(a.split("=", 1)[1])
    return out


def run_checks(*, kubeconfig: str | None = None, data_dir: str | None = None, lang: str = "en") -> list[Item]:
    if not kubeconfig:
        if not data_dir:
            raise ValueError("give a kubeconfig or a data dir")
        kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
    c = _Cluster(kubeconfig, data_dir)
    items: list[Item] = []
    items += _apiserver_checks(c, lang)
    items += _file_checks(c, lang)
    items += _kubelet_checks(c, lang)
    items += _policy_checks(c, lang)
    return items


def _apiserver_checks(c: _Cluster, lang: str) -> list[Item]:
    out = []
    anon = _probe(c.server + "/api/v1/namespaces")
    out.append(_item("1.2.1", "Ensure that the --anonymous-auth argument is set to false", anon == 401,
                     {"en": "Start the API server with --anonymous-auth=false (or --profile hardened).",
                      "zh": "以 --anonymous-auth=false（或 --profile hardened）启动 API server。"}, lang, manual=True,
                     detail=f"anonymous GET /api/v1/namespaces -> {anon}"))
    cmd = server_cmdline(c.data_dir)
    if cmd is None:
        out.append({"id": "1.2", "title": "API server flags (the API server does not run on this machine, or no "
                    "--data-dir was given): not checked", "status": "INFO", "remediation": ""})
        return out
    out.append(_item("1.2.2", "Ensure that the --token-auth-file parameter is not set",
                     not _flag(cmd, "--token-auth-file"),
                     {"en": "Remove --token-auth-file; use client certificates or ServiceAccount tokens.",
                      "zh": "去掉 --token-auth-file；改用客户端证书或 ServiceAccount 令牌。"}, lang))
    modes = ",".join(_flag(cmd, "--authorization-mode") or ["Node,RBAC"]).split(",")
    out.append(_item("1.2.6", "Ensure that the --authorization-mode argument is not set to AlwaysAllow",
                     "AlwaysAllow" not in modes, {"en": "Use --authorization-mode=Node,RBAC.",
                                                  "zh": "使用 --authorization-mode=Node,RBAC。"}, lang))
    out.append(_item("1.2.7", "Ensure that the --authorization-mode argument includes Node", "Node" in modes,
                     {"en": "Add Node: --authorization-mode=Node,RBAC.", "zh": "加上 Node：--authorization-mode=Node,RBAC。"},
                     lang))
    out.append(_item("1.2.8", "Ensure that the --authorization-mode argument includes RBAC", "RBAC" in modes,
                     {"en": "Add RBAC: --authorization-mode=Node,RBAC.", "zh": "加上 RBAC：--authorization-mode=Node,RBAC。"},
                     lang))
    disabled = ",".join(_flag(cmd, "--disable-admission-plugins")).split(",")
    enabled = ",".join(_flag(cmd, "--enable-admission-plugins")).split(",")
    out.append(_item("1.2.10", "Ensure that the admission control plugin AlwaysAdmit is not set",
                     "AlwaysAdmit" not in enabled, {"en": "Remove AlwaysAdmit from --enable-admission-plugins.",
                                                    "zh": "从 --enable-admission-plugins 中去掉 AlwaysAdmit。"}, lang))
    out.append(_item("1.2.14", "Ensure that the admission control plugin NodeRestriction is set",
                     "NodeRestriction" not in disabled,
                     {"en": "Do not disable NodeRestriction (--disable-admission-plugins).",
                      "zh": "不要禁用 NodeRestriction（--disable-admission-plugins）。"}, lang))
    has_audit = bool(_flag(cmd, "--audit-log-path"))
    out.append(_item("1.2.16", "Ensure that the --audit-log-path argument is set", has_audit,
                     {"en": "Set --audit-log-path and --audit-policy-file.",
                      "zh": "设置 --audit-log-path 和 --audit-policy-file。"}, lang))
    for cid, flag, least in (("1.2.17", "--audit-log-maxage", 30), ("1.2.18", "--audit-log-maxbackup", 10),
                             ("1.2.19", "--audit-log-maxsize", 100)):
        values = _flag(cmd, flag)
        ok = bool(values) and values[-1].isdigit() and int(values[-1]) >= least
        out.append(_item(cid, f"Ensure that the {flag} argument is set to {least} or as appropriate", ok,
                         {"en": f"Set {flag}={least} (or more).", "zh": f"设置 {flag}={least}（或更大）。"}, lang))
    out.append(_item("1.2.27", "Ensure that the --encryption-provider-config argument is set as appropriate",
                     bool(_flag(cmd, "--encryption-provider-config")),
                     {"en": "Write an EncryptionConfiguration (aescbc or secretbox for secrets) and pass "
                            "--encryption-provider-config; then rewrite the secrets.",
                      "zh": "编写 EncryptionConfiguration（secrets 使用 aescbc 或 secretbox），通过 "
                            "--encryption-provider-config 传入，然后重写所有 Secret。"}, lang, manual=True))
    kubelet_args = _flag(cmd, "--kubelet-arg")
    out.append(_item("4.2.1", "Ensure that the kubelet --anonymous-auth argument is set to false (flags)",
                     "anonymous-auth=true" not in kubelet_args,
                     {"en": "Remove --kubelet-arg anonymous-auth=true.", "zh": "去掉 --kubelet-arg anonymous-auth=true。"},
                     lang))
    return out


def _file_checks(c: _Cluster, lang: str) -> list[Item]:
    if not c.data_dir or not os.path.isdir(c.data_dir):
        return []
    out = []
    loose = []
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        path = os.path.join(c.data_dir, name)
        if os.path.exists(path) and stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            loose.append(f"{name} {oct(stat.S_IMODE(os.stat(path).st_mode))}")
    out.append(_item("1.1.11", "Ensure that the datastore files have permissions 600 or more restrictive",
                     not loose, {"en": f"chmod 600 {c.data_dir}/state.db*; chmod 700 {c.data_dir}",
                                 "zh": f"chmod 600 {c.data_dir}/state.db*；chmod 700 {c.data_dir}"}, lang,
                     detail=", ".join(loose)))
    pki = os.path.join(c.data_dir, "pki")
    loose_keys = [n for n in sorted(os.listdir(pki)) if n.endswith(".key")
                  and stat.S_IMODE(os.stat(os.path.join(pki, n)).st_mode) & 0o077] if os.path.isdir(pki) else []
    out.append(_item("1.1.21", "Ensure that the PKI key file permissions are set to 600", not loose_keys,
                     {"en": f"chmod 600 {pki}/*.key", "zh": f"chmod 600 {pki}/*.key"}, lang,
                     detail=", ".join(loose_keys)))
    return out


def _kubelet_checks(c: _Cluster, lang: str) -> list[Item]:
    out = []
    for node in c.get("nodes"):
        name = node["metadata"]["name"]
        port = ((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint", {}).get("Port")
        addrs = [a["address"] for a in (node.get("status") or {}).get("addresses") or [] if a["type"] == "InternalIP"]
        if not port or not addrs or (node["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node"):
            continue
        host = addrs[0]
        code = _probe(f"https://{host}:{port}/pods")
        if code == 0:
            continue  # a simulated node, or not reachable from here
        out.append(_item("4.2.1", f"Ensure that the kubelet --anonymous-auth argument is set to false ({name})",
                         code == 401, {"en": "Kubelet: authentication.anonymous.enabled=false "
                                             "(--kubelet-arg anonymous-auth=false).",
                                       "zh": "kubelet：authentication.anonymous.enabled=false"
                                             "（--kubelet-arg anonymous-auth=false）。"}, lang,
                         detail=f"anonymous GET :{port}/pods -> {code}"))
        token = _nobody_token(c)
        if token:
            code = _probe(f"https://{host}:{port}/pods", token)
            out.append(_item("4.2.2", f"Ensure that the kubelet --authorization-mode argument is not set to "
                             f"AlwaysAllow ({name})", code == 403,
                             {"en": "Kubelet: authorization.mode=Webhook (--kubelet-arg authorization-mode=Webhook).",
                              "zh": "kubelet：authorization.mode=Webhook（--kubelet-arg authorization-mode=Webhook）。"},
                             lang, detail=f"GET :{port}/pods with a token without nodes/proxy -> {code}"))
        with socket.socket() as s:
            s.settimeout(2)
            open_ = s.connect_ex((host, 10255)) == 0
        out.append(_item("4.2.4", f"Verify that the --read-only-port argument is set to 0 ({name})", not open_,
                         {"en": "Kubelet: readOnlyPort: 0 (remove --kubelet-arg read-only-port).",
                          "zh": "kubelet：readOnlyPort: 0（去掉 --kubelet-arg read-only-port）。"}, lang, manual=True))
    return out


def _nobody_token(c: _Cluster) -> str | None:
    r = c.kubectl("create", "token", "default", "-n", "default", "--duration=10m")
    return r.stdout.strip() if r.returncode == 0 else None


def _policy_checks(c: _Cluster, lang: str) -> list[Item]:
    out = []
    crbs = c.get("clusterrolebindings")
    admins = [b["metadata"]["name"] for b in crbs if b.get("roleRef", {}).get("name") == "cluster-admin"
              and any(s.get("name") != "system:masters" and not s.get("name", "").startswith("kubeadm:")
                      for s in b.get("subjects") or [])]
    out.append(_item("5.1.1", "Ensure that the cluster-admin role is only used where required", not admins,
                     {"en": "Bind narrower roles instead: kubectl delete clusterrolebinding " + " ".join(admins),
                      "zh": "改为绑定范围更小的角色：kubectl delete clusterrolebinding " + " ".join(admins)}, lang,
                     manual=True, detail=", ".join(admins)))
    anon_secrets = c.can("list", "secrets", "system:anonymous", "system:unauthenticated")
    auth_secrets = c.can("list", "secrets", "lab-check-probe", "system:authenticated")
    out.append(_item("5.1.2", "Minimize access to secrets", not (anon_secrets or auth_secrets),
                     {"en": "Remove bindings that give system:anonymous / system:authenticated get/list on secrets.",
                      "zh": "删除授予 system:anonymous / system:authenticated 读取 secrets 的绑定。"}, lang, manual=True,
                     detail=f"anonymous={anon_secrets} authenticated={auth_secrets}"))
    roles = c.get("clusterroles") + c.get("roles", "-A")
    wild = [r["metadata"]["name"] for r in roles if not r["metadata"]["name"].startswith("system:")
            and r["metadata"]["name"] not in ("cluster-admin", "admin", "edit", "view")
            and any("*" in (rule.get("resources") or []) + (rule.get("verbs") or []) for rule in r.get("rules") or [])]
    out.append(_item("5.1.3", "Minimize wildcard use in Roles and ClusterRoles", not wild,
                     {"en": "Replace '*' with the resources and verbs needed.", "zh": "用所需的资源和动作替换 '*'。"},
                     lang, manual=True, detail=", ".join(sorted(set(wild))[:8])))
    risky = [r["metadata"]["name"] for r in roles if not r["metadata"]["name"].startswith("system:")
             and r["metadata"]["name"] not in ("cluster-admin", "admin", "edit")
             and any({"bind", "escalate", "impersonate"} & set(rule.get("verbs") or []) for rule in r.get("rules") or [])]
    out.append(_item("5.1.8", "Limit use of the Bind, Impersonate and Escalate permissions", not risky,
                     {"en": "Remove bind/escalate/impersonate or scope them with resourceNames.",
                      "zh": "去掉 bind/escalate/impersonate，或用 resourceNames 限定范围。"}, lang, manual=True,
                     detail=", ".join(sorted(set(risky))[:8])))
    namespaces = [n for n in c.get("namespaces") if n["metadata"]["name"] not in SYSTEM_NAMESPACES]
    unlabelled = [n["metadata"]["name"] for n in namespaces
                  if (n["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") in (None, "privileged")]
    out.append(_item("5.2.1", "Ensure that the cluster has at least one active policy control mechanism in place "
                     "(Pod Security enforce labels)", not unlabelled,
                     {"en": "kubectl label ns <ns> pod-security.kubernetes.io/enforce=baseline (or restricted)",
                      "zh": "kubectl label ns <ns> pod-security.kubernetes.io/enforce=baseline（或 restricted）"}, lang,
                     manual=True, detail="unenforced: " + ", ".join(unlabelled[:8]) if unlabelled else ""))
    policies = {p["metadata"]["namespace"] for p in c.get("networkpolicies", "-A")}
    open_ns = [n["metadata"]["name"] for n in namespaces if n["metadata"]["name"] not in policies]
    out.append(_item("5.3.2", "Ensure that all Namespaces have NetworkPolicies defined", not open_ns,
                     {"en": "Add a default-deny NetworkPolicy to each namespace, then allow what is needed.",
                      "zh": "为每个命名空间添加默认拒绝的 NetworkPolicy，再放行需要的流量。"}, lang, manual=True,
                     detail=", ".join(open_ns[:8])))
    env_secret = sorted({f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in c.get("pods", "-A")
                         for ctr in (p.get("spec") or {}).get("containers") or []
                         for e in ctr.get("env") or [] if (e.get("valueFrom") or {}).get("secretKeyRef")})
    out.append(_item("5.4.1", "Prefer using secrets as files over secrets as environment variables",
                     not env_secret, {"en": "Mount secrets as files (volumes) instead of env.valueFrom.secretKeyRef.",
                                      "zh": "用卷把 Secret 挂载成文件，而不是 env.valueFrom.secretKeyRef。"}, lang,
                     manual=True, detail=", ".join(env_secret[:8])))
    automount = [f"{sa['metadata']['namespace']}" for sa in c.get("serviceaccounts", "-A")
                 if sa["metadata"]["name"] == "default" and sa.get("automountServiceAccountToken") is not False
                 and sa["metadata"]["namespace"] not in SYSTEM_NAMESPACES]
    out.append(_item("5.1.5", "Ensure that default service accounts are not actively used", not automount,
                     {"en": "Set automountServiceAccountToken: false on each namespace's default ServiceAccount.",
                      "zh": "在每个命名空间的 default ServiceAccount 上设置 automountServiceAccountToken: false。"},
                     lang, manual=True, detail=", ".join(automount[:8])))
    return out


def print_table(items: list[Item]) -> None:
    counts: dict[str, int] = {}
    for it in items:
        counts[it["status"]] = counts.get(it["status"], 0) + 1
        print(f"[{it['status']}] {it['id']} {it['title']}")
    remediations = [it for it in items if it["remediation"]]
    if remediations:
        print("\n== Remediations ==")
        for it in remediations:
            print(f"{it['id']} {it['remediation']}")
    print("\n== Summary ==")
    for status in ("PASS", "FAIL", "WARN", "INFO"):
        print(f"{counts.get(status, 0)} checks {status}")

