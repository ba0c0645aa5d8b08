"""The admission chain over raw HTTPS: NamespaceLifecycle, ServiceAccount, DefaultTolerationSeconds, Priority,
DefaultStorageClass, LimitRanger, ResourceQuota and PodSecurity, with upstream's codes and messages
(security.md §3.5: ADM-01, ADM-02, ADM-04, PSA-01…PSA-11)."""

from __future__ import annotations

import time
import uuid

import pytest

from .test_rest_semantics import session


def _ns(http, labels=None) -> str:
    name = "adm-" + uuid.uuid4().hex[:8]
    r = http.post(http.base + "/api/v1/namespaces", json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
    assert r.status_code == 201, r.text
    return name


def pod(name="p", container="c", **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": container, "image": "nginx"}]}}
    body["spec"].update(spec)
    return body


def privileged_pod(name="p") -> dict:
    body = pod(name)
    body["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return body


@pytest.fixture(scope="module")
def http(cluster):
    return session(cluster)


def post_pod(http, ns, body):
    return http.post(f"{http.base}/api/v1/namespaces/{ns}/pods", json=body)


def warnings_of(r) -> list[str]:
    out = []
    for raw in r.raw.headers.getlist("Warning"):
        assert raw.startswith('299 - "') and raw.endswith('"')
        out.append(raw[len('299 - "'):-1].replace('\\"', '"'))
    return out


# ---------------------------------------------------------------- NamespaceLifecycle (ADM-01)


def test_create_in_missing_namespace_is_404(http):
    r = post_pod(http, "no-such-ns", pod())
    assert r.status_code == 404
    assert r.json()["message"] == 'namespaces "no-such-ns" not found'


def test_create_in_terminating_namespace_is_403(http):
    ns = _ns(http)
    assert http.delete(f"{http.base}/api/v1/namespaces/{ns}").status_code == 200
    r = http.post(f"{http.base}/api/v1/namespaces/{ns}/configmaps",
                  json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
    assert r.status_code == 403
    body = r.json()
    assert body["message"] == (f'configmaps "late" is forbidden: unable to create new content in namespace {ns} '
                               "because it is being terminated")
    assert body["details"]["causes"][0]["reason"] == "NamespaceTerminating"


def test_immortal_namespace_cannot_be_deleted(http):
    r = http.delete(f"{http.base}/api/v1/namespaces/kube-system")
    assert r.status_code == 403
    assert r.json()["message"] == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'


# ---------------------------------------------------------------- ServiceAccount (ADM-02, ADM-04)


def test_missing_service_account_refused(http):
    ns = _ns(http)
    r = post_pod(http, ns, pod(serviceAccountName="nope"))
    assert r.status_code == 403
    assert r.json()["message"] == (f'pods "p" is forbidden: error looking up service account {ns}/nope: '
                                   'serviceaccount "nope" not found')


def test_default_service_account_and_token_volume(http):
    ns = _ns(http)
    r = post_pod(http, ns, pod(initContainers=[{"name": "i", "image": "busybox"}]))
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    assert http.get(f"{http.base}/api/v1/namespaces/{ns}/serviceaccounts/default").status_code == 200
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(volume["name"]) == len("kube-api-access-") + 5
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    for c in spec["containers"] + spec["initContainers"]:
        assert {"name": volume["name"], "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"} in c["volumeMounts"]


def test_automount_off_on_pod_or_service_account(http):
    ns = _ns(http)
    r = post_pod(http, ns, pod("a", automountServiceAccountToken=False))
    assert r.status_code == 201
    assert "volumes" not in r.json()["spec"] and "volumeMounts" not in r.json()["spec"]["containers"][0]
    http.post(f"{http.base}/api/v1/namespaces/{ns}/serviceaccounts", json={
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
        "automountServiceAccountToken": False, "imagePullSecrets": [{"name": "regcred"}]})
    r = post_pod(http, ns, pod("b", serviceAccountName="quiet"))
    assert r.status_code == 201
    spec = r.json()["spec"]
    assert "volumes" not in spec and spec["imagePullSecrets"] == [{"name": "regcred"}]
    # the pod's own choice wins over the ServiceAccount's
    r = post_pod(http, ns, pod("c", serviceAccountName="quiet", automountServiceAccountToken=True))
    assert any(v["name"].startswith("kube-api-access-") for v in r.json()["spec"]["volumes"])


# ---------------------------------------------------------------- DefaultTolerationSeconds, Priority


def test_default_tolerations_and_priority(http):
    ns = _ns(http)
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 10}
    spec = post_pod(http, ns, pod(tolerations=[own])).json()["spec"]
    assert spec["tolerations"] == [own, {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                         "effect": "NoExecute", "tolerationSeconds": 300}]
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    spec = post_pod(http, ns, pod("crit", priorityClassName="system-node-critical")).json()["spec"]
    assert spec["priority"] == 2000001000
    r = post_pod(http, ns, pod("x", priorityClassName="gold"))
    assert r.status_code == 403
    assert r.json()["message"] == 'pods "x" is forbidden: no PriorityClass with name gold was found'
    r = post_pod(http, ns, pod("y", priorityClassName="system-cluster-critical", priority=5))
    assert r.status_code == 403
    assert r.json()["message"] == (
        'pods "y" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority '
        "admission controller computed 2000000000 from the given PriorityClass name")


def test_builtin_priority_classes_and_single_global_default(http):
    base = http.base + "/apis/scheduling.k8s.io/v1/priorityclasses"
    assert http.get(base + "/system-cluster-critical").json()["value"] == 2000000000
    name = "def-" + uuid.uuid4().hex[:6]
    r = http.post(base, json={"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                              "metadata": {"name": name}, "value": 7, "globalDefault": True})
    assert r.status_code == 201, r.text
    try:
        ns = _ns(http)
        spec = post_pod(http, ns, pod()).json()["spec"]
        assert (spec["priorityClassName"], spec["priority"]) == (name, 7)
        r = http.post(base, json={"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                  "metadata": {"name": name + "-2"}, "value": 8, "globalDefault": True})
        assert r.status_code == 403
        assert r.json()["message"].endswith(f"PriorityClass {name} is already marked as default. "
                                            "Only one default can exist")
    finally:
        http.delete(base + "/" + name)


# ---------------------------------------------------------------- DefaultStorageClass


def test_default_storage_class(http):
    sc = "std-" + uuid.uuid4().hex[:6]
    base = http.base + "/apis/storage.k8s.io/v1/storageclasses"
    http.post(base, json={"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "x",
                          "metadata": {"name": sc, "annotations": {
                              "storageclass.kubernetes.io/is-default-class": "true"}}})
    try:
        ns = _ns(http)
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
        r = http.post(f"{http.base}/api/v1/namespaces/{ns}/persistentvolumeclaims", json=claim)
        assert r.json()["spec"]["storageClassName"] == sc
        claim["metadata"]["name"] = "explicit-none"
        claim["spec"]["storageClassName"] = ""
        r = http.post(f"{http.base}/api/v1/namespaces/{ns}/persistentvolumeclaims", json=claim)
        assert r.json()["spec"]["storageClassName"] == ""
    finally:
        http.delete(base + "/" + sc)


# ---------------------------------------------------------------- LimitRanger


def test_limit_range_defaults_and_limits(http):
    ns = _ns(http)
    http.post(f"{http.base}/api/v1/namespaces/{ns}/limitranges", json={
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"},
                             "default": {"cpu": "500m", "memory": "128Mi"},
                             "defaultRequest": {"cpu": "200m", "memory": "64Mi"}}]}})
    r = post_pod(http, ns, pod())
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"},
                                                         "requests": {"cpu": "200m", "memory": "64Mi"}}
    assert got["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    big = pod("big")
    big["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}, "requests": {"cpu": "50m"}}
    r = post_pod(http, ns, big)
    assert r.status_code == 403
    assert r.json()["message"] == ('pods "big" is forbidden: [minimum cpu usage per Container is 100m, but request '
                                   "is 50m, maximum cpu usage per Container is 1, but limit is 2]")


# ---------------------------------------------------------------- ResourceQuota


def test_resource_quota_counts_refuses_and_refreshes(http):
    ns = _ns(http)
    quota_url = f"{http.base}/api/v1/namespaces/{ns}/resourcequotas"
    r = http.post(quota_url, json={"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
                                   "spec": {"hard": {"pods": "2", "configmaps": "5"}}})
    assert r.status_code == 201
    assert post_pod(http, ns, pod("a")).status_code == 201
    assert post_pod(http, ns, pod("b")).status_code == 201
    r = post_pod(http, ns, pod("c"))
    assert r.status_code == 403
    assert r.json()["reason"] == "Forbidden"
    assert r.json()["message"] == ('pods "c" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, '
                                   "limited: pods=2")
    status = http.get(quota_url + "/q").json()["status"]
    assert status["hard"] == {"pods": "2", "configmaps": "5"} and status["used"]["pods"] == "2"
    http.delete(f"{http.base}/api/v1/namespaces/{ns}/pods/a")
    deadline = time.monotonic() + 5
    while http.get(quota_url + "/q").json()["status"]["used"]["pods"] != "1":
        assert time.monotonic() < deadline, "quota usage not refreshed after the delete"
        time.sleep(0.05)
    assert post_pod(http, ns, pod("c")).status_code == 201


def test_compute_quota_requires_requests(http):
    ns = _ns(http)
    http.post(f"{http.base}/api/v1/namespaces/{ns}/resourcequotas", json={
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
        "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi"}}})
    r = post_pod(http, ns, pod())
    assert r.status_code == 403
    assert r.json()["message"] == ('pods "p" is forbidden: failed quota: compute: must specify '
                                   "limits.memory,requests.cpu")
    heavy = pod("heavy")
    heavy["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1500m"}, "limits": {"memory": "512Mi"}}
    r = post_pod(http, ns, heavy)
    assert r.json()["message"] == ('pods "heavy" is forbidden: exceeded quota: compute, requested: '
                                   "requests.cpu=1500m, used: requests.cpu=0, limited: requests.cpu=1")


# ---------------------------------------------------------------- PodSecurity (PSA-01…PSA-11)

ENFORCE = "pod-security.kubernetes.io/enforce"


def test_psa_01_privileged_in_baseline(http):
    ns = _ns(http, {ENFORCE: "baseline"})
    r = post_pod(http, ns, privileged_pod())
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
    assert r.json()["message"] == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                   '(container "c" must not set securityContext.privileged=true)')


def test_psa_02_to_04_host_access_in_baseline(http):
    ns = _ns(http, {ENFORCE: "baseline"})
    r = post_pod(http, ns, pod("h", volumes=[{"name": "host", "hostPath": {"path": "/"}}]))
    assert r.status_code == 403 and 'hostPath volumes (volume "host")' in r.json()["message"]
    r = post_pod(http, ns, pod("n", hostNetwork=True, hostPID=True))
    assert r.status_code == 403 and "host namespaces (hostNetwork=true, hostPID=true)" in r.json()["message"]
    caps = pod("k")
    caps["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": ["NET_RAW"]}}
    r = post_pod(http, ns, caps)
    assert r.status_code == 403 and "non-default capabilities" in r.json()["message"]


def test_psa_05_06_restricted(http):
    ns = _ns(http, {ENFORCE: "restricted"})
    r = post_pod(http, ns, pod("p", container="p"))
    assert r.status_code == 403
    msg = r.json()["message"]
    assert msg.startswith('pods "p" is forbidden: violates PodSecurity "restricted:latest": ')
    for reason in ("allowPrivilegeEscalation != false", "unrestricted capabilities", "runAsNonRoot != true",
                   "seccompProfile"):
        assert reason in msg
    ok = pod("ok", securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    ok["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False,
                                                      "capabilities": {"drop": ["ALL"]}}
    r = post_pod(http, ns, ok)
    assert r.status_code == 201, r.text
    assert warnings_of(r) == []


def test_psa_08_deployment_template_only_warns(http):
    ns = _ns(http, {ENFORCE: "baseline"})
    tmpl = privileged_pod()
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"selector": {"matchLabels": {"a": "b"}},
                       "template": {"metadata": {"labels": {"a": "b"}}, "spec": tmpl["spec"]}}}
    r = http.post(f"{http.base}/apis/apps/v1/namespaces/{ns}/deployments", json=deploy)
    assert r.status_code == 201
    assert warnings_of(r) == ['would violate PodSecurity "baseline:latest": privileged (container "c" must not '
                              "set securityContext.privileged=true)"]


def test_psa_09_warn_only(http):
    ns = _ns(http, {"pod-security.kubernetes.io/warn": "restricted"})
    r = post_pod(http, ns, pod())
    assert r.status_code == 201
    (w,) = warnings_of(r)
    assert w.startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false')


def test_psa_10_invalid_label_is_refused_on_write(http):
    r = http.post(http.base + "/api/v1/namespaces", json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bogus-" + uuid.uuid4().hex[:6],
                                                              "labels": {ENFORCE: "bogus"}}})
    assert r.status_code == 422
    assert r.json()["message"].endswith('is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
                                        'Invalid value: "bogus": must be one of privileged, baseline, restricted')


def test_psa_11_stricter_label_warns_about_existing_pods(http):
    ns = _ns(http)
    assert post_pod(http, ns, privileged_pod("priv")).status_code == 201
    assert post_pod(http, ns, pod("plain")).status_code == 201
    r = http.patch(f"{http.base}/api/v1/namespaces/{ns}", data=b'{"metadata":{"labels":{"%s":"baseline"}}}'
                   % ENFORCE.encode(), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200
    assert warnings_of(r) == [f'existing pods in namespace "{ns}" violate the new PodSecurity enforce level '
                              '"baseline:latest"', "priv: privileged"]
    # relaxing (or keeping) the level says nothing
    r = http.patch(f"{http.base}/api/v1/namespaces/{ns}", data=b'{"metadata":{"labels":{"%s":"privileged"}}}'
                   % ENFORCE.encode(), headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and warnings_of(r) == []


def test_psa_13_kube_system_is_privileged_by_default(http):
    r = post_pod(http, "kube-system", privileged_pod("sys-" + uuid.uuid4().hex[:6]))
    assert r.status_code == 201 and warnings_of(r) == []
    http.delete(f"{http.base}/api/v1/namespaces/kube-system/pods/{r.json()['metadata']['name']}")
