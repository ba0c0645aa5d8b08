"""Server-side apply and managedFields with the real kubectl and raw requests against a running server."""

from __future__ import annotations

import os

import pytest
import requests
import yaml

NS = "ssa-e2e"

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: ssa-e2e
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        args: ["-g", "daemon off;"]
"""


@pytest.fixture(scope="module")
def ns(cluster):
    cluster.kubectl("create", "namespace", NS, check=True)
    return NS


def manifest(tmp_path, name: str, replicas: int) -> str:
    path = tmp_path / f"{name}-{replicas}.yaml"
    path.write_text(DEPLOYMENT.format(name=name, replicas=replicas))
    return str(path)


def raw(cluster, method: str, path: str, body=None, headers=None, params=None, data=None) -> requests.Response:
    pki = os.path.join(cluster.data_dir, "pki")
    s = requests.Session()
    s.trust_env = False
    return s.request(method, cluster.url + path, json=body, data=data, headers=headers or {}, params=params,
                     verify=os.path.join(pki, "ca.crt"),
                     cert=(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key")), timeout=10)


def get_yaml(cluster, *args: str) -> dict:
    out = cluster.kubectl("get", *args, "-n", NS, "-o", "yaml", "--show-managed-fields", check=True).stdout
    return yaml.safe_load(out)


def by_manager(obj: dict) -> dict[str, dict]:
    return {e["manager"]: e for e in obj["metadata"]["managedFields"]}


def test_apply_server_side_create_then_unchanged(cluster, ns, tmp_path):
    path = manifest(tmp_path, "ssa-one", 2)
    r = cluster.kubectl("apply", "--server-side", "-f", path, check=True)
    assert r.stdout.strip() == "deployment.apps/ssa-one serverside-applied"
    first = get_yaml(cluster, "deployment", "ssa-one")
    entry = by_manager(first)["kubectl"]
    assert entry["operation"] == "Apply" and entry["apiVersion"] == "apps/v1"
    assert entry["fieldsType"] == "FieldsV1" and entry["time"]
    assert entry["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert 'k:{"name":"nginx"}' in entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    r = cluster.kubectl("apply", "--server-side", "-f", path, check=True)
    assert r.stdout.strip() == "deployment.apps/ssa-one serverside-applied"
    again = get_yaml(cluster, "deployment", "ssa-one")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    # without --show-managed-fields kubectl hides them, as it does against upstream
    plain = yaml.safe_load(cluster.kubectl("get", "deployment", "ssa-one", "-n", NS, "-o", "yaml", check=True).stdout)
    assert "managedFields" not in plain["metadata"]


def test_conflict_with_another_manager_and_force(cluster, ns, tmp_path):
    cluster.kubectl("apply", "--server-side", "-f", manifest(tmp_path, "ssa-two", 1), check=True)
    r = cluster.kubectl("apply", "--server-side", "--field-manager=ci", "-f", manifest(tmp_path, "ssa-two", 3))
    assert r.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in r.stderr
    assert "--force-conflicts" in r.stderr  # kubectl's own advice, printed for FieldManagerConflict causes
    r = cluster.kubectl("apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f",
                        manifest(tmp_path, "ssa-two", 3), check=True)
    assert r.stdout.strip() == "deployment.apps/ssa-two serverside-applied"
    obj = get_yaml(cluster, "deployment", "ssa-two")
    assert obj["spec"]["replicas"] == 3
    managers = by_manager(obj)
    assert managers["ci"]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert "f:replicas" not in managers["kubectl"]["fieldsV1"]["f:spec"]


def test_client_side_apply_then_foreign_server_side_apply(cluster, ns, tmp_path):
    cluster.kubectl("apply", "-f", manifest(tmp_path, "ssa-three", 1), check=True)
    obj = get_yaml(cluster, "deployment", "ssa-three")
    entry = by_manager(obj)["kubectl-client-side-apply"]
    assert entry["operation"] == "Update"
    r = cluster.kubectl("apply", "--server-side", "--field-manager=other", "-f", manifest(tmp_path, "ssa-three", 4))
    assert r.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
            in r.stderr)
    # kubectl's own server-side apply upgrades from client-side apply without a conflict
    r = cluster.kubectl("apply", "--server-side", "-f", manifest(tmp_path, "ssa-three", 4), check=True)
    assert get_yaml(cluster, "deployment", "ssa-three")["spec"]["replicas"] == 4


def test_update_managers_from_kubectl_commands(cluster, ns, tmp_path):
    cluster.kubectl("create", "deployment", "ssa-four", "--image=nginx", "-n", NS, check=True)
    cluster.kubectl("label", "deployment", "ssa-four", "-n", NS, "tier=web", check=True)
    cluster.kubectl("scale", "deployment", "ssa-four", "-n", NS, "--replicas=2", check=True)
    obj = get_yaml(cluster, "deployment", "ssa-four")
    managers = {(e["manager"], e["operation"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}
    assert ("kubectl-create", "Update", "") in managers
    assert managers[("kubectl-label", "Update", "")]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    scale = managers[("kubectl", "Update", "scale")]
    assert scale["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in managers[("kubectl-create", "Update", "")]["fieldsV1"]["f:spec"]


def test_raw_apply_errors_and_managed_fields_reset(cluster, ns):
    base = f"/apis/apps/v1/namespaces/{NS}/deployments"
    apply_headers = {"Content-Type": "application/apply-patch+yaml"}
    body = yaml.safe_load(DEPLOYMENT.format(name="ssa-five", replicas=1))
    r = raw(cluster, "PATCH", base + "/ssa-five", body=body, headers=apply_headers, params={"fieldManager": "t"})
    assert r.status_code == 201, r.text
    r = raw(cluster, "PATCH", base + "/ssa-five", body=body, headers=apply_headers)
    assert r.status_code == 422
    assert r.json()["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                   'is required for apply patch')
    r = raw(cluster, "PATCH", base + "/ssa-five", body=body, headers=apply_headers, params={"fieldManager": "m" * 129})
    assert r.status_code == 422 and "Too long: may not be more than 128 bytes" in r.json()["message"]
    no_kind = {k: v for k, v in body.items() if k != "kind"}
    r = raw(cluster, "PATCH", base + "/ssa-five", body=no_kind, headers=apply_headers, params={"fieldManager": "t"})
    assert (r.status_code, r.json()["message"]) == (400, "invalid object type: apps/v1, Kind=")
    r = raw(cluster, "PATCH", base + "/ssa-five", body={"spec": {"paused": True}},
            headers={"Content-Type": "application/merge-patch+json"}, params={"force": "true"})
    assert r.status_code == 422 and r.json()["message"].endswith(
        "force: Forbidden: may not be specified for non-apply patch")
    # an Update's manager comes from the User-Agent when no fieldManager is given
    r = raw(cluster, "PATCH", base + "/ssa-five", body={"spec": {"paused": True}},
            headers={"Content-Type": "application/merge-patch+json", "User-Agent": "my-tool/1.0 (x)"})
    assert r.status_code == 200
    managers = {e["manager"]: e for e in r.json()["metadata"]["managedFields"]}
    assert managers["my-tool"]["fieldsV1"] == {"f:spec": {"f:paused": {}}}
    # an empty list resets managedFields
    r = raw(cluster, "PATCH", base + "/ssa-five", body={"metadata": {"managedFields": []}},
            headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and "managedFields" not in r.json()["metadata"]
