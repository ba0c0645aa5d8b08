"""Authorization end to end (security.md §3.3 AUTHZ-*, AUTHN-02..04): the real kubectl and raw HTTPS against a
server running Node,RBAC, with users from client certificates of the cluster CA."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from kubelite.pki.ca import ensure_cluster_pki
from kubelite.pki.kubeconfig import write_kubeconfig
from kubelite_cluster import KUBECTL, free_port


class User:
    def __init__(self, cluster, name: str, groups: list[str]) -> None:
        pki = ensure_cluster_pki(cluster.data_dir)
        cert, key = pki.issue_client_cert(name, groups)
        base = os.path.join(cluster.data_dir + "-users", name.replace(":", "_"))
        os.makedirs(base, exist_ok=True)
        self.cert, self.key, self.ca = (os.path.join(base, f) for f in ("tls.crt", "tls.key", "ca.crt"))
        for path, data in ((self.cert, cert), (self.key, key), (self.ca, pki.ca_cert_pem)):
            with open(path, "wb") as f:
                f.write(data)
        self.kubeconfig = os.path.join(base, "kubeconfig")
        write_kubeconfig(self.kubeconfig, server=cluster.url, ca_pem=pki.ca_cert_pem, client_cert_pem=cert,
                         client_key_pem=key)
        self.cluster = cluster
        self.name = name

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cluster.cache_dir, *args]
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        return http(self.cluster, method, path, body, (self.cert, self.key))


def http(cluster, method: str, path: str, body: dict | None = None, cert=None) -> tuple[int, dict]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(cluster.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw.strip().startswith(b"{") else {"text": raw.decode()}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def admin(cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return cluster.kubectl(*args, input=input, check=True)


def apply(cluster, obj: dict) -> None:
    admin(cluster, "apply", "-f", "-", input=json.dumps(obj))


def ns(cluster, name: str) -> str:
    if cluster.kubectl("get", "ns", name).returncode != 0:
        admin(cluster, "create", "namespace", name)
    return name


# ---------------------------------------------------------------- anonymous, discovery, messages


def test_anonymous_is_403_with_upstream_message_and_public_info_is_open(cluster):
    code, body = http(cluster, "GET", "/api/v1/secrets")
    assert code == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in '
                               'API group "" at the cluster scope')
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert http(cluster, "GET", path)[0] == 200, path
    for path in ("/api", "/apis", "/openapi/v2"):
        code, body = http(cluster, "GET", path)
        assert code == 403 and body["message"] == f'forbidden: User "system:anonymous" cannot get path "{path}"'


def test_authenticated_user_gets_discovery_but_nothing_else(cluster):
    carol = User(cluster, "carol", ["dev"])
    assert carol.request("GET", "/api")[0] == 200
    assert carol.request("GET", "/apis")[0] == 200
    code, body = carol.request("GET", "/api/v1/namespaces/default/pods/web")
    assert code == 403
    assert body["message"] == ('pods "web" is forbidden: User "carol" cannot get resource "pods" in API group "" '
                               'in the namespace "default"')
    assert body["details"] == {"name": "web", "kind": "pods"}
    code, body = carol.request("GET", "/foo")
    assert code == 403 and body["message"] == 'forbidden: User "carol" cannot get path "/foo"'
    result = carol.kubectl("get", "deployments", "-n", "kube-system")
    assert result.returncode == 1
    assert ('deployments.apps is forbidden: User "carol" cannot list resource "deployments" in API group "apps" '
            'in the namespace "kube-system"') in result.stderr


# ---------------------------------------------------------------- kubectl auth can-i


def test_auth_can_i_yes_no_exit_codes_as_and_list(cluster):
    ns(cluster, "cani")
    ok = cluster.kubectl("auth", "can-i", "delete", "nodes")
    assert ok.returncode == 0 and ok.stdout.strip() == "yes"
    no = cluster.kubectl("auth", "can-i", "get", "secrets", "--as", "x", "--as-group", "system:authenticated")
    assert no.returncode == 1 and no.stdout.strip() == "no"
    for verb in ("list", "watch"):
        r = cluster.kubectl("auth", "can-i", verb, "secrets", "-A", "--as", "x", "--as-group", "system:authenticated")
        assert r.stdout.strip() == "no"
    r = cluster.kubectl("auth", "can-i", "create", "pods", "-A", "--as", "x", "--as-group", "system:authenticated")
    assert r.stdout.strip() == "no"  # AUTHZ-08 (CIS 5.1.2, 5.1.4)
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "dora-view", "namespace": "cani"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dora"}]})
    yes = cluster.kubectl("auth", "can-i", "list", "pods", "-n", "cani", "--as", "dora")
    assert yes.returncode == 0 and yes.stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "list", "pods", "-n", "default", "--as", "dora").returncode == 1
    assert cluster.kubectl("auth", "can-i", "get", "secrets", "-n", "cani", "--as", "dora").returncode == 1
    listing = cluster.kubectl("auth", "can-i", "--list", "-n", "cani", "--as", "dora")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert any(line.split()[0] == "pods" and line.split()[-3:] == ["[get", "list", "watch]"] for line in lines)
    assert any(line.split() == ["[/api]", "[]", "[get]"] for line in lines)
    assert not any(line.split()[0] == "secrets" for line in lines)


def test_self_subject_access_review_matches_the_real_request(cluster):
    ns(cluster, "ssar")
    erin = User(cluster, "erin", [])
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "cm-reader", "namespace": "ssar"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "erin", "namespace": "ssar"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                    "subjects": [{"kind": "User", "name": "erin"}]})
    for verb, path, resource in (("list", "/api/v1/namespaces/ssar/configmaps", "configmaps"),
                                 ("list", "/api/v1/namespaces/ssar/secrets", "secrets"),
                                 ("list", "/api/v1/namespaces/default/configmaps", "configmaps")):
        namespace = path.split("/")[4]
        code, review = erin.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}}})
        assert code == 201
        real = erin.request("GET", path)[0]
        assert review["status"]["allowed"] == (real == 200), (path, review, real)
        # SubjectAccessReview by an admin about erin agrees too
        code, sar = http(cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "erin", "groups": ["system:authenticated"],
                     "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}}},
            cert=_admin_cert(cluster))
        assert code == 201 and sar["status"]["allowed"] == (real == 200)
    assert review["kind"] == "SelfSubjectAccessReview" and review["metadata"] == {"creationTimestamp": None}
    assert sar["status"].get("reason", "") == ""
    code, allowed = http(cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "spec": {"user": "erin", "resourceAttributes": {"verb": "get", "resource": "configmaps",
                                                        "namespace": "ssar"}}}, cert=_admin_cert(cluster))
    assert allowed["status"] == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "erin/ssar" of Role '
                                                            '"cm-reader" to User "erin"'}
    code, bad = http(cluster, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}, cert=_admin_cert(cluster))
    assert code == 422 and "at least one of user or group must be specified" in bad["message"]
    # erin may not ask about others
    code, body = erin.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
        "spec": {"user": "x", "resourceAttributes": {"verb": "get", "resource": "pods"}}})
    assert code == 403


def _admin_cert(cluster):
    pki_dir = os.path.join(cluster.data_dir, "pki")
    return os.path.join(pki_dir, "admin.crt"), os.path.join(pki_dir, "admin.key")


# ---------------------------------------------------------------- escalation


def test_rolebinding_escalation_refused_until_bind_is_granted(cluster):
    team = ns(cluster, "team-a")
    frank = User(cluster, "frank", [])
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "binder", "namespace": team},
                    "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
                               "verbs": ["create", "get", "list"]}]})
    admin(cluster, "create", "rolebinding", "frank-binder", "-n", team, "--role", "binder", "--user", "frank")
    result = frank.kubectl("create", "rolebinding", "grab", "-n", team, "--clusterrole", "admin", "--user", "frank")
    assert result.returncode == 1
    assert ('rolebindings.rbac.authorization.k8s.io "grab" is forbidden: user "frank" (groups=["system:authenticated"]) '
            'is attempting to grant RBAC permissions not currently held:') in result.stderr
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "watch"' in result.stderr
    # AUTHZ-03: `bind` on that one clusterrole is enough
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "bind-admin"},
                    "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                               "verbs": ["bind"], "resourceNames": ["admin"]}]})
    admin(cluster, "create", "rolebinding", "frank-bind-admin", "-n", team, "--clusterrole", "bind-admin",
          "--user", "frank")
    result = frank.kubectl("create", "rolebinding", "grab", "-n", team, "--clusterrole", "admin", "--user", "frank")
    assert result.returncode == 0, result.stderr
    assert frank.kubectl("get", "secrets", "-n", team).returncode == 0  # now holds admin in team-a
    refused = frank.kubectl("create", "rolebinding", "grab-edit", "-n", team, "--clusterrole", "cluster-admin",
                            "--user", "frank")
    assert refused.returncode == 1 and "not currently held" in refused.stderr


def test_role_update_needs_escalate_for_new_permissions(cluster):
    team = ns(cluster, "team-b")
    gina = User(cluster, "gina", [])
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "self", "namespace": team},
            "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                       "verbs": ["get", "update", "patch"]}]}
    apply(cluster, role)
    admin(cluster, "create", "rolebinding", "gina-self", "-n", team, "--role", "self", "--user", "gina")
    grown = json.loads(json.dumps(role))
    grown["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    code, body = gina.request("PUT", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/roles/self", grown)
    assert code == 403
    assert body["message"] == (
        'roles.rbac.authorization.k8s.io "self" is forbidden: user "gina" (groups=["system:authenticated"]) is '
        'attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], '
        'Verbs:["get"]}')
    # rules she holds may be rewritten freely
    same = json.loads(json.dumps(role))
    same["rules"][0]["verbs"] = ["get", "update"]
    assert gina.request("PUT", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/roles/self", same)[0] == 200
    role["rules"][0]["verbs"] = ["get", "update", "patch", "escalate"]
    apply(cluster, role)
    grown["rules"][0]["verbs"] = ["get", "update", "patch", "escalate"]
    code, body = gina.request("PUT", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/roles/self", grown)
    assert code == 200, body
    assert gina.request("GET", f"/api/v1/namespaces/{team}/secrets/nope")[0] == 404  # the new rule is live


# ---------------------------------------------------------------- rule semantics


def test_default_service_account_cannot_read_secrets(cluster):
    fresh = ns(cluster, "fresh-ns")
    result = cluster.kubectl("get", "secrets", "-n", fresh, "--as", f"system:serviceaccount:{fresh}:default")
    assert result.returncode == 1
    assert (f'secrets is forbidden: User "system:serviceaccount:{fresh}:default" cannot list resource "secrets" '
            f'in API group "" in the namespace "{fresh}"') in result.stderr


def test_resource_names_rule_denies_list_and_other_names(cluster):
    space = ns(cluster, "names")
    admin(cluster, "create", "secret", "generic", "a", "-n", space, "--from-literal=k=v")
    admin(cluster, "create", "secret", "generic", "b", "-n", space, "--from-literal=k=v")
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "only-a", "namespace": space},
                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"],
                               "resourceNames": ["a"]}]})
    admin(cluster, "create", "rolebinding", "hank", "-n", space, "--role", "only-a", "--user", "hank")
    hank = User(cluster, "hank", [])
    assert hank.request("GET", f"/api/v1/namespaces/{space}/secrets/a")[0] == 200
    assert hank.request("GET", f"/api/v1/namespaces/{space}/secrets/b")[0] == 403
    assert hank.request("GET", f"/api/v1/namespaces/{space}/secrets")[0] == 403


def test_wildcard_rule_covers_any_group_and_new_types(cluster):
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "everything-read"},
                    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}]})
    admin(cluster, "create", "clusterrolebinding", "ivy-everything", "--clusterrole", "everything-read",
          "--user", "ivy")
    r = cluster.kubectl("auth", "can-i", "list", "widgets.example.com", "--as", "ivy")
    assert r.stdout.strip() == "yes"
    assert cluster.kubectl("auth", "can-i", "delete", "widgets.example.com", "--as", "ivy").stdout.strip() == "no"


def test_aggregation_adds_labelled_rules_to_view(cluster):
    apply(cluster, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "widgets-view",
                                 "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                    "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for name in ("view", "edit", "admin"):
            rules = json.loads(admin(cluster, "get", "clusterrole", name, "-o", "json").stdout)["rules"]
            if {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]} not in rules:
                break
        else:
            return
        time.sleep(0.1)
    pytest.fail("the widgets rule did not reach view, edit and admin")


def test_masters_bypass_rbac(cluster):
    who = json.loads(admin(cluster, "auth", "whoami", "-o", "json").stdout)
    assert "system:masters" in who["status"]["userInfo"]["groups"]
    r = cluster.kubectl("auth", "can-i", "escalate", "clusterroles", "--as", "nobody", "--as-group", "system:masters")
    assert r.stdout.strip() == "yes"


# ---------------------------------------------------------------- Node authorizer and NodeRestriction


def _pod(name: str, node: str, secret: str, configmap: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "nodes-ns"},
            "spec": {"nodeName": node, "containers": [{
                "name": "c", "image": "busybox",
                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": configmap, "key": "k"}}}]}],
                "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}


def test_node_authorizer_and_node_restriction(cluster):
    space = ns(cluster, "nodes-ns")
    for node in ("node1", "node2"):
        if cluster.kubectl("get", "node", node).returncode != 0:
            apply(cluster, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
        admin(cluster, "create", "secret", "generic", f"s-{node}", "-n", space, "--from-literal=k=v")
        admin(cluster, "create", "configmap", f"cm-{node}", "-n", space, "--from-literal=k=v")
        apply(cluster, _pod(f"p-{node}", node, f"s-{node}", f"cm-{node}"))
    admin(cluster, "create", "secret", "generic", "unused", "-n", space, "--from-literal=k=v")
    kubelet = User(cluster, "system:node:node1", ["system:nodes"])
    base = f"/api/v1/namespaces/{space}"
    # AUTHZ-11: only what its own pods use
    assert kubelet.request("GET", f"{base}/secrets/s-node1")[0] == 200
    assert kubelet.request("GET", f"{base}/configmaps/cm-node1")[0] == 200
    code, body = kubelet.request("GET", f"{base}/secrets/s-node2")
    assert code == 403
    assert body["message"] == (
        f'secrets "s-node2" is forbidden: User "system:node:node1" cannot get resource "secrets" in API group "" '
        f"in the namespace \"{space}\": no relationship found between node 'node1' and this object")
    assert kubelet.request("GET", f"{base}/secrets/unused")[0] == 403
    assert kubelet.request("GET", f"{base}/configmaps/cm-node2")[0] == 403
    assert kubelet.request("GET", f"{base}/secrets")[0] == 403
    assert kubelet.request("DELETE", f"{base}/secrets/s-node1")[0] == 403
    # node rules: it may read pods and nodes
    assert kubelet.request("GET", f"{base}/pods/p-node2")[0] == 200
    # AUTHZ-12: another node's objects
    code, node2 = http(cluster, "GET", "/api/v1/nodes/node2", cert=_admin_cert(cluster))
    node2["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    code, body = kubelet.request("PUT", "/api/v1/nodes/node2/status", node2)
    assert code == 403 and body["message"] == 'nodes "node2" is forbidden: node "node1" is not allowed to modify node "node2"'
    code, body = kubelet.request("DELETE", "/api/v1/nodes/node2")
    assert code == 403
    mirror = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "mirror", "namespace": space,
                           "annotations": {"kubernetes.io/config.mirror": "x"}},
              "spec": {"nodeName": "node2", "containers": [{"name": "c", "image": "busybox"}]}}
    code, body = kubelet.request("POST", f"{base}/pods", mirror)
    assert code == 403 and 'node "node1" can only create pods with spec.nodeName set to itself' in body["message"]
    pod2 = kubelet.request("GET", f"{base}/pods/p-node2")[1]
    pod2["status"] = {"phase": "Running"}
    code, body = kubelet.request("PUT", f"{base}/pods/p-node2/status", pod2)
    assert code == 403 and "can only update pod status for pods with spec.nodeName set to itself" in body["message"]
    pod1 = kubelet.request("GET", f"{base}/pods/p-node1")[1]
    pod1["status"] = {"phase": "Running"}
    assert kubelet.request("PUT", f"{base}/pods/p-node1/status", pod1)[0] == 200
    # AUTHZ-13: no node-restriction labels on its own Node, other labels fine
    node1 = kubelet.request("GET", "/api/v1/nodes/node1")[1]
    node1["metadata"].setdefault("labels", {})["node-restriction.kubernetes.io/foo"] = "bar"
    code, body = kubelet.request("PUT", "/api/v1/nodes/node1", node1)
    assert code == 403
    assert body["message"] == ('nodes "node1" is forbidden: is not allowed to modify labels: '
                               "node-restriction.kubernetes.io/foo")
    node1["metadata"]["labels"].pop("node-restriction.kubernetes.io/foo")
    node1["metadata"]["labels"]["example.com/rack"] = "r1"
    assert kubelet.request("PUT", "/api/v1/nodes/node1", node1)[0] == 200
    # a user named like a node but outside system:nodes is just a user
    fake = User(cluster, "system:node:node2", [])
    assert fake.request("GET", f"{base}/secrets/s-node2")[0] == 403


# ---------------------------------------------------------------- --authorization-mode


def test_authorization_mode_flag(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", str(tmp_path / "d1"),
                          "--port", str(free_port()), "--authorization-mode", "ABAC"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and 'authorization-mode "ABAC" is not a valid mode' in bad.stderr
    from kubelite_cluster import Cluster

    lab = Cluster(data_dir=str(tmp_path / "d2"), port=free_port(), cache_dir=str(tmp_path / "cache"),
                  extra_args=["--authorization-mode", "AlwaysAllow"])
    lab.start()
    try:
        assert "WARNING: --authorization-mode includes AlwaysAllow" in lab.log()
        code, _ = http(lab, "GET", "/api/v1/secrets")
        assert code == 200  # anonymous may do anything: that is what the warning is about
    finally:
        lab.stop()
