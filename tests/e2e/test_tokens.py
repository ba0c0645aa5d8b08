"""ServiceAccount, legacy and bootstrap tokens, reviews and impersonation with the real kubectl
(security.md §3.1, tutorial.md B.2)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid

import jwt
import pytest
import requests

from kubectl_output import header, rows
from kubelite.pki.kubeconfig import write_kubeconfig
from kubelite_cluster import KUBECTL

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _ca(cluster) -> str:
    return os.path.join(cluster.data_dir, "pki", "ca.crt")


def as_token(cluster, token: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """kubectl with nothing but the bearer token (the admin kubeconfig's certificate would win otherwise)."""
    path = os.path.join(os.path.dirname(cluster.data_dir), f"token-{uuid.uuid4().hex[:8]}.kubeconfig")
    with open(_ca(cluster), "rb") as f:
        write_kubeconfig(path, server=cluster.url, ca_pem=f.read(), token=token, user="token-user")
    try:
        return subprocess.run([KUBECTL, "--kubeconfig", path, "--cache-dir", cluster.cache_dir + "-token", *args],
                              input=input, capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)


def whoami(cluster, token: str) -> dict[str, str]:
    r = as_token(cluster, token, "auth", "whoami")
    assert r.returncode == 0, r.stderr
    assert header(r.stdout) == ["ATTRIBUTE", "VALUE"]
    out = {}
    for line in r.stdout.splitlines()[1:]:
        key, _, value = line.partition("  ")
        out[key.strip()] = value.strip()
    return out


def raw(cluster, method: str, path: str, token: str | None = None, body=None, headers=None) -> requests.Response:
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    s = requests.Session()
    s.trust_env = False
    return s.request(method, cluster.url + path, json=body, headers=h, verify=_ca(cluster), timeout=10)


def admin_raw(cluster, method: str, path: str, body=None, headers=None) -> requests.Response:
    pki = os.path.join(cluster.data_dir, "pki")
    s = requests.Session()
    s.trust_env = False
    return s.request(method, cluster.url + path, json=body, headers=headers or {}, verify=_ca(cluster),
                     cert=(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key")), timeout=10)


def _claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture(scope="module")
def ns(cluster):
    name = "tokens-e2e"
    cluster.kubectl("create", "namespace", name, check=True)
    cluster.kubectl("-n", name, "create", "serviceaccount", "bob", check=True)
    return name


def test_review_resources_are_discoverable(cluster):
    out = cluster.kubectl("api-resources", "--api-group=authentication.k8s.io", check=True).stdout
    table = {r[0]: r for r in rows(out)}
    assert table["tokenreviews"] == ["tokenreviews", "authentication.k8s.io/v1", "false", "TokenReview"]
    assert table["selfsubjectreviews"] == ["selfsubjectreviews", "authentication.k8s.io/v1", "false",
                                           "SelfSubjectReview"]


def test_whoami_admin(cluster):
    out = cluster.kubectl("auth", "whoami", check=True).stdout
    assert out.splitlines()[0].split() == ["ATTRIBUTE", "VALUE"]
    assert out.splitlines()[1].split() == ["Username", "kubernetes-admin"]
    assert out.splitlines()[2].split() == ["Groups", "[system:masters", "system:authenticated]"]


def test_create_token_and_use_it(cluster, ns):
    r = cluster.kubectl("-n", ns, "create", "token", "bob", check=True)
    token = r.stdout
    assert not token.endswith("\n") and token.count(".") == 2
    claims = _claims(token)
    assert claims["aud"] == [ISSUER] and claims["iss"] == ISSUER
    assert claims["exp"] - claims["iat"] == 3600
    sa = json.loads(cluster.kubectl("-n", ns, "get", "sa", "bob", "-o", "json", check=True).stdout)
    me = whoami(cluster, token)
    assert me["Username"] == f"system:serviceaccount:{ns}:bob"
    assert me["UID"] == sa["metadata"]["uid"]
    assert me["Groups"] == f"[system:serviceaccounts system:serviceaccounts:{ns} system:authenticated]"
    assert me["Extra: authentication.kubernetes.io/credential-id"] == f"[JTI={claims['jti']}]"
    # authenticated as the SA, which RBAC grants nothing in the namespace
    r = as_token(cluster, token, "-n", ns, "get", "serviceaccounts")
    assert r.returncode != 0
    assert (f'serviceaccounts is forbidden: User "system:serviceaccount:{ns}:bob" cannot list resource '
            f'"serviceaccounts" in API group "" in the namespace "{ns}"') in r.stderr


def test_token_duration_and_audience(cluster, ns):
    cluster.kubectl("-n", ns, "create", "serviceaccount", "timed", check=True)
    r = cluster.kubectl("-n", ns, "create", "token", "timed", "--duration", "1m")
    assert r.returncode != 0
    assert ('TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 60: '
            'may not specify a duration less than 10 minutes') in r.stderr
    token = cluster.kubectl("-n", ns, "create", "token", "timed", "--duration", "20m", check=True).stdout
    claims = _claims(token)
    assert claims["exp"] - claims["iat"] == 1200
    other = cluster.kubectl("-n", ns, "create", "token", "timed", "--audience", "vault", check=True).stdout
    assert _claims(other)["aud"] == ["vault"]
    r = as_token(cluster, other, "auth", "whoami")  # AUTHN-15: not an audience of the API server
    assert r.returncode != 0 and "Unauthorized" in r.stderr
    missing = cluster.kubectl("-n", ns, "create", "token", "nobody")
    assert missing.returncode != 0 and 'serviceaccounts "nobody" not found' in missing.stderr


def test_token_request_invalid_is_422(cluster, ns):
    r = admin_raw(cluster, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/bob/token",
                  {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 60}})
    assert r.status_code == 422
    body = r.json()
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                                          "message": "Invalid value: 60: may not specify a duration less than "
                                                     "10 minutes"}]
    ok = admin_raw(cluster, "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/bob/token",
                   {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
    assert ok.status_code == 201
    out = ok.json()
    assert out["kind"] == "TokenRequest" and out["spec"] == {"audiences": [ISSUER], "expirationSeconds": 3600}
    assert out["metadata"]["name"] == "bob" and out["status"]["expirationTimestamp"].endswith("Z")


def test_pod_bound_token_dies_with_the_pod(cluster, ns):
    cluster.kubectl("-n", ns, "create", "serviceaccount", "runner", check=True)
    cluster.kubectl("-n", ns, "run", "bound", "--image=busybox", "--overrides",
                    json.dumps({"spec": {"serviceAccountName": "runner"}}), check=True)
    token = cluster.kubectl("-n", ns, "create", "token", "runner", "--bound-object-kind", "Pod",
                            "--bound-object-name", "bound", check=True).stdout
    pod = json.loads(cluster.kubectl("-n", ns, "get", "pod", "bound", "-o", "json", check=True).stdout)
    assert _claims(token)["kubernetes.io"]["pod"] == {"name": "bound", "uid": pod["metadata"]["uid"]}
    me = whoami(cluster, token)
    assert me["Extra: authentication.kubernetes.io/pod-name"] == "[bound]"
    assert me["Extra: authentication.kubernetes.io/pod-uid"] == f"[{pod['metadata']['uid']}]"
    wrong = cluster.kubectl("-n", ns, "create", "token", "bob", "--bound-object-kind", "Pod",
                            "--bound-object-name", "bound")
    assert wrong.returncode != 0 and "different serviceaccount name" in wrong.stderr
    cluster.kubectl("-n", ns, "delete", "pod", "bound", "--grace-period=0", "--force", check=True)
    assert raw(cluster, "GET", f"/api/v1/namespaces/{ns}/pods", token).status_code == 401  # AUTHN-11


def test_deleted_service_account_token_is_401(cluster, ns):
    cluster.kubectl("-n", ns, "create", "serviceaccount", "doomed", check=True)
    token = cluster.kubectl("-n", ns, "create", "token", "doomed", check=True).stdout
    assert raw(cluster, "GET", "/api", token).status_code == 200
    cluster.kubectl("-n", ns, "delete", "serviceaccount", "doomed", check=True)
    r = raw(cluster, "GET", "/api", token)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"  # AUTHN-10
    review = admin_raw(cluster, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert review.status_code == 201
    status = review.json()["status"]
    assert status.get("authenticated") is not True and status["user"] == {}
    assert "not found" in status["error"]


def test_expired_and_forged_tokens_are_401(cluster, ns):
    sa = json.loads(cluster.kubectl("-n", ns, "get", "sa", "bob", "-o", "json", check=True).stdout)
    with open(os.path.join(cluster.data_dir, "pki", "sa.key"), "rb") as f:
        key = f.read()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": [ISSUER], "sub": f"system:serviceaccount:{ns}:bob", "iat": now - 7200,
              "nbf": now - 7200, "exp": now - 3600, "jti": "x",
              "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "bob", "uid": sa["metadata"]["uid"]}}}
    expired = jwt.encode(claims, key, algorithm="ES256")
    assert raw(cluster, "GET", "/api", expired).status_code == 401  # AUTHN-09
    fresh = jwt.encode(dict(claims, exp=now + 3600), key, algorithm="ES256")
    assert raw(cluster, "GET", "/api", fresh).status_code == 200
    unsigned = jwt.encode(dict(claims, exp=now + 3600), None, algorithm="none")
    assert raw(cluster, "GET", "/api", unsigned).status_code == 401  # AUTHN-14
    assert raw(cluster, "GET", "/api", "garbage." * 3).status_code == 401  # AUTHN-06


def test_token_review(cluster, ns):
    token = cluster.kubectl("-n", ns, "create", "token", "bob", check=True).stdout
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    # `create --raw`: plain `create -f` would validate against /openapi/v2 in protobuf, which is not served yet
    out = json.loads(cluster.kubectl("create", "--raw", "/apis/authentication.k8s.io/v1/tokenreviews", "-f", "-",
                                     input=json.dumps(review), check=True).stdout)
    assert out["kind"] == "TokenReview"
    status = out["status"]
    assert status["authenticated"] is True and status["audiences"] == [ISSUER]
    assert status["user"]["username"] == f"system:serviceaccount:{ns}:bob"
    assert status["user"]["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                                        "system:authenticated"]
    bad = admin_raw(cluster, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "nope"}})
    assert bad.status_code == 201 and bad.json()["status"] == {"user": {}}
    empty = admin_raw(cluster, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}})
    assert empty.status_code == 400
    # nothing is stored: the resource has no list or get
    assert admin_raw(cluster, "GET", "/apis/authentication.k8s.io/v1/tokenreviews").status_code == 405


def test_dashboard_admin_user_flow(cluster):
    """tutorial.md B.2: admin-user SA, ClusterRoleBinding to cluster-admin, the legacy Secret token read with
    `describe secret`, and `create token`; both tokens authenticate as the SA (authorization is RBAC's part)."""
    ns = "kubernetes-dashboard"
    if cluster.kubectl("get", "namespace", ns).returncode != 0:  # the dashboard add-on's tests may have made it
        cluster.kubectl("create", "namespace", ns, check=True)
    admin_user = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "admin-user", "namespace": ns}}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "admin-user"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"kind": "ServiceAccount", "name": "admin-user", "namespace": ns}]}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "admin-user-token", "namespace": ns,
                           "annotations": {"kubernetes.io/service-account.name": "admin-user"}}}
    for obj in (admin_user, binding, secret):
        cluster.kubectl("create", "-f", "-", input=json.dumps(obj), check=True)
    listed = cluster.kubectl("-n", ns, "get", "secret", check=True).stdout
    name = next(line.split()[0] for line in listed.splitlines() if "admin-user" in line)
    token = ""
    deadline = time.monotonic() + 10
    while not token and time.monotonic() < deadline:
        described = cluster.kubectl("-n", ns, "describe", "secret", name, check=True).stdout
        token = next((line.split()[1] for line in described.splitlines()
                      if line.startswith("token:") and len(line.split()) > 1), "")
        if not token:
            time.sleep(0.1)
    assert token, described
    assert "ca.crt:" in described and "namespace:  20 bytes" in described
    me = whoami(cluster, token)
    assert me["Username"] == "system:serviceaccount:kubernetes-dashboard:admin-user"
    bound = cluster.kubectl("-n", ns, "create", "token", "admin-user", check=True).stdout
    assert whoami(cluster, bound)["Username"] == "system:serviceaccount:kubernetes-dashboard:admin-user"
    assert as_token(cluster, token, "get", "namespaces").returncode == 0
    # AUTHN-12: the legacy token dies with its Secret
    cluster.kubectl("-n", ns, "delete", "secret", name, check=True)
    assert raw(cluster, "GET", "/api", token).status_code == 401
    assert raw(cluster, "GET", "/api", bound).status_code == 200


def test_impersonation_with_as(cluster):
    out = cluster.kubectl("--as", "jane", "--as-group", "dev", "auth", "whoami", check=True).stdout
    lines = [line.split(None, 1) for line in out.splitlines()]
    assert lines[1] == ["Username", "jane"] and lines[2] == ["Groups", "[dev system:authenticated]"]
    sa = cluster.kubectl("--as", "system:serviceaccount:default:robot", "auth", "whoami", check=True).stdout
    assert "[system:serviceaccounts system:serviceaccounts:default system:authenticated]" in sa


def test_impersonation_needs_authentication(cluster):
    r = raw(cluster, "GET", "/api/v1/namespaces", headers={"Impersonate-User": "admin"})
    assert r.status_code == 403
    assert r.json()["message"] == ('users "admin" is forbidden: User "system:anonymous" cannot impersonate '
                                   'resource "users" in API group "" at the cluster scope')
    r = raw(cluster, "GET", "/api/v1/namespaces", token="bogus", headers={"Impersonate-User": "admin"})
    assert r.status_code == 401  # B29: authentication comes first


def test_bootstrap_token(cluster):
    data = {"token-id": "k8slit", "token-secret": "0123456789abcdef", "usage-bootstrap-authentication": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
              "metadata": {"name": "bootstrap-token-k8slit", "namespace": "kube-system"},
              "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(secret), check=True)
    me = whoami(cluster, "k8slit.0123456789abcdef")
    assert me["Username"] == "system:bootstrap:k8slit"
    assert me["Groups"] == "[system:bootstrappers system:bootstrappers:kubeadm:default-node-token system:authenticated]"
    assert raw(cluster, "GET", "/api", "k8slit.0123456789abcdeX").status_code == 401
    cluster.kubectl("-n", "kube-system", "delete", "secret", "bootstrap-token-k8slit", check=True)
    assert raw(cluster, "GET", "/api", "k8slit.0123456789abcdef").status_code == 401


def test_pod_token_of_3607_seconds_is_extended(cluster, ns):
    """Upstream's --service-account-extend-token-expiration (default true): a pod-bound 3607 s token lives a year
    and warns after 3607 s; any other lifetime is issued as asked (AUTHN-19 turns the extension off)."""
    cluster.kubectl("-n", ns, "run", "ext", "--image=busybox", "--overrides",
                    json.dumps({"spec": {"serviceAccountName": "bob"}}), check=True)
    path = f"/api/v1/namespaces/{ns}/serviceaccounts/bob/token"
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "ext"}
    r = admin_raw(cluster, "POST", path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                          "spec": {"expirationSeconds": 3607, "boundObjectRef": ref}})
    assert r.status_code == 201, r.text
    claims = _claims(r.json()["status"]["token"])
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] - claims["iat"] == 3607
    r = admin_raw(cluster, "POST", path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                          "spec": {"expirationSeconds": 3600, "boundObjectRef": ref}})
    claims = _claims(r.json()["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3600 and "warnafter" not in claims["kubernetes.io"]


def test_component_identity_kubeconfig(cluster):
    from kubelite.pki.components import SCHEDULER, write_component_kubeconfig

    cn, orgs = SCHEDULER
    path = write_component_kubeconfig(cluster.data_dir, "scheduler-test", cn, orgs)
    r = subprocess.run([KUBECTL, "--kubeconfig", path, "--cache-dir", cluster.cache_dir + "-sched", "auth", "whoami"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split() == ["Username", "system:kube-scheduler"]
