"""Every kind kubelite serves, read through the official Python client's typed (strict) models.

Go's encoder writes every field whose tag lacks `omitempty` even when it is zero; the client's models refuse an
object without them (`ValidationError … V1DaemonSetStatus`). One object of each kind is created, then the
create response, a get, the list and a watch event of every object in the cluster (after the controllers
touched them) are deserialised with `ApiClient().deserialize`.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from kubernetes import client as k8s
from kubernetes import config

from kubelite_cluster import Cluster, free_port

NS = "zv"
_MODELS = {name for name in dir(k8s) if name[:1].isupper()}


def model_name(api_version: str, kind: str) -> str:
    """The client's model for a kind: V1DaemonSet, or group-prefixed where names clash (CoreV1Event)."""
    group, _, version = api_version.rpartition("/")
    plain = version[:1].upper() + version[1:] + kind
    if plain in _MODELS:
        return plain
    prefix = (group.split(".")[0] or "core").capitalize()
    return prefix + plain


def _csr_pem() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zv-user")])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


POD_SPEC = {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}
TEMPLATE = {"metadata": {"labels": {"app": "zv"}}, "spec": POD_SPEC}
SELECTOR = {"matchLabels": {"app": "zv"}}


def manifests() -> list[tuple[str, dict]]:
    """(collection path, object) for one object of every creatable kind."""
    ns = f"/api/v1/namespaces/{NS}"

    def apis(gv: str, resource: str, namespaced: bool = True) -> str:
        return f"/apis/{gv}/namespaces/{NS}/{resource}" if namespaced else f"/apis/{gv}/{resource}"

    meta = {"name": "zv"}
    return [
        (f"{ns}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": POD_SPEC}),
        (f"{ns}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unscheduled"},
                        "spec": {**POD_SPEC, "schedulerName": "nobody"}}),
        (f"{ns}/services", {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                            "spec": {"selector": {"app": "zv"}, "ports": [{"port": 80}]}}),
        (f"{ns}/endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual"},
                             "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}),
        (f"{ns}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "b"}}),
        (f"{ns}/secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"a": "b"}}),
        (f"{ns}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        ("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "zv-node"}}),
        (f"{ns}/events", {"apiVersion": "v1", "kind": "Event", "metadata": meta,
                          "involvedObject": {"kind": "Pod", "name": "zv", "namespace": NS},
                          "reason": "Test", "message": "m", "type": "Normal"}),
        ("/api/v1/persistentvolumes", {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "zv"},
                                       "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                                "hostPath": {"path": "/tmp/zv"}}}),
        (f"{ns}/persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "storageClassName": ""}}),
        (f"{ns}/replicationcontrollers", {"apiVersion": "v1", "kind": "ReplicationController", "metadata": meta,
                                          "spec": {"replicas": 1, "selector": {"app": "zv"}, "template": TEMPLATE}}),
        (f"{ns}/limitranges", {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta,
                               "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}}),
        (f"{ns}/resourcequotas", {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta,
                                  "spec": {"hard": {"pods": "100"}}}),
        (f"{ns}/podtemplates", {"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": TEMPLATE}),
        (apis("apps/v1", "deployments"), {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                                          "spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}}),
        (apis("apps/v1", "replicasets"), {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
                                          "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "rs"}},
                                                   "template": {**TEMPLATE, "metadata": {"labels": {"app": "rs"}}}}}),
        (apis("apps/v1", "statefulsets"), {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
                                           "spec": {"replicas": 1, "serviceName": "zv", "selector": SELECTOR,
                                                    "template": TEMPLATE}}),
        (apis("apps/v1", "daemonsets"), {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta,
                                         "spec": {"selector": SELECTOR, "template": TEMPLATE}}),
        (apis("apps/v1", "controllerrevisions"), {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                                                  "metadata": {"name": "manual"}, "revision": 1, "data": {}}),
        (apis("batch/v1", "jobs"), {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                                    "spec": {"template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}}),
        (apis("batch/v1", "cronjobs"), {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                                        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
                                            "spec": {**POD_SPEC, "restartPolicy": "Never"}}}}}}),
        (apis("networking.k8s.io/v1", "ingresses"), {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"defaultBackend": {"service": {"name": "zv", "port": {"number": 80}}}}}),
        (apis("networking.k8s.io/v1", "ingressclasses", False), {
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "zv"},
            "spec": {"controller": "example.com/zv"}}),
        (apis("networking.k8s.io/v1", "networkpolicies"), {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}}}),
        (apis("authentication.k8s.io/v1", "selfsubjectreviews", False), {
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        (apis("authentication.k8s.io/v1", "tokenreviews", False), {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "not-a-token"}}),
        (apis("authorization.k8s.io/v1", "localsubjectaccessreviews"), {
            "apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": NS},
            "spec": {"user": "bob", "resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods"}}}),
        (apis("authorization.k8s.io/v1", "selfsubjectaccessreviews", False), {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}),
        (apis("authorization.k8s.io/v1", "selfsubjectrulesreviews", False), {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": NS}}),
        (apis("authorization.k8s.io/v1", "subjectaccessreviews", False), {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "bob", "resourceAttributes": {"verb": "get", "resource": "pods"}}}),
        (apis("rbac.authorization.k8s.io/v1", "roles"), {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        (apis("rbac.authorization.k8s.io/v1", "rolebindings"), {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "zv"},
            "subjects": [{"kind": "User", "name": "bob"}]}),
        (apis("rbac.authorization.k8s.io/v1", "clusterroles", False), {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "zv"}}),
        (apis("rbac.authorization.k8s.io/v1", "clusterrolebindings", False), {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "zv"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "zv"},
            "subjects": [{"kind": "ServiceAccount", "name": "zv", "namespace": NS}]}),
        (apis("certificates.k8s.io/v1", "certificatesigningrequests", False), {
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "zv"},
            "spec": {"request": _csr_pem(), "signerName": "kubernetes.io/kube-apiserver-client",
                     "usages": ["client auth"]}}),
        (apis("coordination.k8s.io/v1", "leases"), {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                    "metadata": meta, "spec": {"holderIdentity": "me"}}),
        (apis("discovery.k8s.io/v1", "endpointslices"), {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "manual"},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}], "ports": [{"port": 80}]}),
        (apis("storage.k8s.io/v1", "storageclasses", False), {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "zv"},
            "provisioner": "example.com/zv"}),
        (apis("events.k8s.io/v1", "events"), {
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "zv2"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/zv",
            "reportingInstance": "i", "action": "Test", "reason": "Test", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "zv", "namespace": NS}}),
        (apis("autoscaling/v2", "horizontalpodautoscalers"), {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "zv"},
                     "maxReplicas": 3}}),
        (apis("autoscaling/v1", "horizontalpodautoscalers"), {
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "v1"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "zv"},
                     "maxReplicas": 3}}),
        (apis("node.k8s.io/v1", "runtimeclasses", False), {
            "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "zv"}, "handler": "zv"}),
        (apis("storage.k8s.io/v1", "csidrivers", False), {
            "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "zv.example.com"},
            "spec": {}}),
        (apis("storage.k8s.io/v1", "csinodes", False), {
            "apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": "zv-node"},
            "spec": {"drivers": [{"name": "zv.example.com", "nodeID": "zv-node"}]}}),
        (apis("storage.k8s.io/v1", "csistoragecapacities"), {
            "apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity", "metadata": meta,
            "storageClassName": "zv", "capacity": "1Gi"}),
        (apis("storage.k8s.io/v1", "volumeattachments", False), {
            "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "zv"},
            "spec": {"attacher": "zv.example.com", "nodeName": "zv-node", "source": {"persistentVolumeName": "zv"}}}),
        (apis("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False), {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "zv"}}),
        (apis("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", False), {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "zv"}}),
        (apis("admissionregistration.k8s.io/v1", "validatingadmissionpolicies", False), {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "zv"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                             "operations": ["CREATE"], "resources": ["configmaps"]}]},
                     "validations": [{"expression": "true"}]}}),
        (apis("admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings", False), {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "zv"}, "spec": {"policyName": "zv", "validationActions": ["Warn"]}}),
        (apis("flowcontrol.apiserver.k8s.io/v1", "prioritylevelconfigurations", False), {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
            "metadata": {"name": "zv"}, "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5,
                                                                                  "limitResponse": {"type": "Reject"}}}}),
        (apis("flowcontrol.apiserver.k8s.io/v1", "flowschemas", False), {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "zv"},
            "spec": {"priorityLevelConfiguration": {"name": "zv"}, "matchingPrecedence": 5000}}),
        (apis("networking.k8s.io/v1", "servicecidrs", False), {
            "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": "zv"},
            "spec": {"cidrs": ["10.250.0.0/24"]}}),
        (apis("policy/v1", "poddisruptionbudgets"), {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
            "spec": {"minAvailable": 1, "selector": SELECTOR}}),
        (apis("scheduling.k8s.io/v1", "priorityclasses", False), {
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "zv"},
            "value": 1000}),
        (apis("apiextensions.k8s.io/v1", "customresourcedefinitions", False), {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.zv.example.com"},
            "spec": {"group": "zv.example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
    ]


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    base = tmp_path_factory.mktemp("typed")
    c = Cluster(data_dir=str(base / "data"), port=free_port(), cache_dir=str(base / "cache"), command="up",
                extra_args=["--node-runtime", "simulated", "--cluster-dns-port", "0", "--ingress-http-port", "0",
                            "--ingress-https-port", "0"])
    c.start()
    yield c
    c.stop()


class Api:
    def __init__(self, cluster: Cluster) -> None:
        self.client = config.new_client_from_config(config_file=cluster.kubeconfig)
        self.host = self.client.configuration.host

    def call(self, method: str, path: str, body=None, *, accept: str = "application/json"):
        headers = {"Accept": accept, "Content-Type": "application/json"}
        resp = self.client.call_api(method, self.host + path, header_params=headers, body=body)
        resp.read()
        return resp

    def typed(self, data: bytes | str, what: str):
        """The object decoded into its model; the model's own errors (ValidationError) fail the test."""
        text = data.decode() if isinstance(data, bytes) else data
        obj = json.loads(text)
        name = model_name(obj["apiVersion"], obj["kind"])
        assert name in _MODELS, f"{what}: no model {name}"
        try:
            return self.client.deserialize(text, name, "application/json")
        except Exception as e:  # noqa: BLE001 - the report names the object and the model
            raise AssertionError(f"{what}: {name}: {e}\n{text[:3000]}") from None


@pytest.fixture(scope="module")
def api(up):
    a = Api(up)
    a.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return a


def test_created_objects_read_back_through_typed_models(api, up):
    created = []
    for path, body in manifests():
        resp = api.call("POST", path, body)
        assert resp.status in (200, 201), f"POST {path}: {resp.status} {resp.data[:500]!r}"
        obj = api.typed(resp.data, f"create {body['kind']}")
        created.append((path, body, obj))
    # the served-but-computed ones: a binding, the scale and token subresources, componentstatuses
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "unscheduled"},
               "target": {"kind": "Node", "name": "zv-node"}}
    resp = api.call("POST", f"/api/v1/namespaces/{NS}/pods/unscheduled/binding", binding)
    assert resp.status == 201, resp.data
    for path in (f"/apis/apps/v1/namespaces/{NS}/deployments/zv/scale",
                 f"/api/v1/namespaces/{NS}/replicationcontrollers/zv/scale"):
        api.typed(api.call("GET", path).data, f"GET {path}")
    token = api.call("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/zv/token",
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
    assert token.status == 201, token.data
    assert api.client.deserialize(token.data.decode(), "AuthenticationV1TokenRequest", "application/json")
    cs = api.call("GET", "/api/v1/componentstatuses")
    api.client.deserialize(cs.data.decode(), "V1ComponentStatusList", "application/json")

    for path, body, _ in created:
        name = (body.get("metadata") or {}).get("name")
        if not name or "reviews" in path:
            continue
        resp = api.call("GET", f"{path}/{name}")
        assert resp.status == 200, resp.data
        api.typed(resp.data, f"get {body['kind']}")


def _resource_paths(api: Api) -> list[tuple[str, str]]:
    """(list path, list model) of every listable resource in discovery."""
    out = []
    groups = [("/api/v1", "v1")]
    for g in json.loads(api.call("GET", "/apis").data)["groups"]:
        for v in g["versions"]:
            groups.append((f"/apis/{v['groupVersion']}", v["groupVersion"]))
    for base, gv in groups:
        for r in json.loads(api.call("GET", base).data)["resources"]:
            if "/" in r["name"] or "list" not in r["verbs"]:
                continue
            out.append((f"{base}/{r['name']}", model_name(gv, r["kind"] + "List")))
    return out


def test_every_stored_object_after_controllers(api, up):
    """Lists and watch events of everything in the cluster, once the controllers have written statuses."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the DaemonSet's and the StatefulSet's pods are running
        ds = json.loads(api.call("GET", f"/apis/apps/v1/namespaces/{NS}/daemonsets/zv").data)
        ss = json.loads(api.call("GET", f"/apis/apps/v1/namespaces/{NS}/statefulsets/zv").data)
        if ds["status"].get("numberReady") and (ss.get("status") or {}).get("readyReplicas"):
            break
        time.sleep(0.5)
    checked = 0
    for path, list_model in _resource_paths(api):
        if list_model not in _MODELS:
            continue  # custom resources have no model
        resp = api.call("GET", path)
        assert resp.status == 200, (path, resp.data[:300])
        text = resp.data.decode()
        if path.endswith("events.k8s.io/v1/events"):
            # core/v1 events have no eventTime, and upstream serves them as events.k8s.io/v1 with
            # `eventTime: null` too (a required MicroTime held by value), which this model refuses
            body = json.loads(text)
            body["items"] = [i for i in body["items"] if i.get("eventTime") is not None]
            text = json.dumps(body)
        try:
            typed = api.client.deserialize(text, list_model, "application/json")
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"list {path}: {list_model}: {e}") from None
        checked += len(typed.items)
        if path.endswith("componentstatuses"):
            continue
        # a watch from 0 replays every object as an ADDED event
        w = api.client.rest_client.pool_manager.request(
            "GET", api.host + path + "?watch=1&timeoutSeconds=1&resourceVersion=0", preload_content=True)
        for line in w.data.splitlines():
            event = json.loads(line)
            assert event["type"] in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"), event
            if event["object"].get("eventTime", "") is None:
                continue  # as above
            api.typed(json.dumps(event["object"]), f"watch {path}")
    assert checked > 80
