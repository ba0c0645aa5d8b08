"""kubectl fidelity beyond the basics: the /openapi/v2 protobuf fallback (create-only kinds, kubectl 1.27),
events served by both event APIs from one storage, and the stored-only kinds upstream lists in discovery."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from kubectl_output import header, rows

KUBECTL_127 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"

TOKEN_REVIEW = """apiVersion: authentication.k8s.io/v1
kind: TokenReview
spec:
  token: not-a-real-token
"""

SELF_SAR = """apiVersion: authorization.k8s.io/v1
kind: SelfSubjectAccessReview
spec:
  resourceAttributes:
    verb: list
    resource: pods
"""

EVENTS_V1 = """apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: hello.1
eventTime: "2024-01-01T00:00:00.000000Z"
reportingController: example.com/ctrl
reportingInstance: ctrl-1
action: Testing
reason: Hello
note: a note from events.k8s.io
type: Normal
regarding:
  apiVersion: v1
  kind: Pod
  name: p1
series:
  count: 3
  lastObservedTime: "2024-01-01T00:01:00.000000Z"
"""

CORE_EVENT = """apiVersion: v1
kind: Event
metadata:
  name: core.1
involvedObject:
  apiVersion: v1
  kind: Pod
  name: p2
reason: Pulled
message: a note from core
source:
  component: kubelet
  host: node-1
firstTimestamp: "2024-01-01T00:00:00Z"
lastTimestamp: "2024-01-01T00:05:00Z"
count: 4
type: Normal
"""


def _file(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def ns(cluster):
    cluster.kubectl("create", "namespace", "kmore", check=True)
    return "kmore"


def test_openapi_v2_json_is_still_served(cluster):
    out = cluster.kubectl("get", "--raw", "/openapi/v2", check=True).stdout
    assert json.loads(out)["swagger"] == "2.0"


@pytest.mark.parametrize("text", [TOKEN_REVIEW, SELF_SAR], ids=["tokenreview", "selfsubjectaccessreview"])
def test_create_only_kinds_validate_against_openapi_v2(cluster, tmp_path, text):
    path = _file(tmp_path, "review.yaml", text)
    result = cluster.kubectl("create", "-f", path, "-o", "json", check=True)
    assert "status" in json.loads(result.stdout)


def test_client_side_validation_names_the_unknown_field(cluster, tmp_path):
    path = _file(tmp_path, "bad.yaml", TOKEN_REVIEW + "  bogus: 1\n")
    result = cluster.kubectl("create", "-f", path)
    assert result.returncode != 0
    assert ('error validating data: ValidationError(TokenReview.spec): unknown field "bogus" in '
            'io.k8s.api.authentication.v1.TokenReviewSpec') in result.stderr


@pytest.mark.skipif(not os.path.exists(KUBECTL_127), reason="kubectl 1.27 is not installed")
def test_kubectl_127_validates_with_openapi_v2(cluster, tmp_path, ns):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL_127, "--kubeconfig", cluster.kubeconfig, "--cache-dir",
                               str(tmp_path / "cache127"), *args], capture_output=True, text=True, timeout=60)

    good = _file(tmp_path, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v127\ndata:\n  a: b\n")
    result = run("apply", "-f", good, "-n", ns)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configmap/v127 created"
    assert run("create", "-f", _file(tmp_path, "tr.yaml", TOKEN_REVIEW), "-o", "name").returncode == 0
    bad = run("create", "-f", _file(tmp_path, "bad.yaml", TOKEN_REVIEW + "  bogus: 1\n"))
    assert bad.returncode != 0 and 'unknown field "bogus"' in bad.stderr


def test_events_k8s_io_and_core_events_are_the_same_objects(cluster, tmp_path, ns):
    cluster.kubectl("create", "-n", ns, "-f", _file(tmp_path, "ev1.yaml", EVENTS_V1), check=True)
    cluster.kubectl("create", "-n", ns, "-f", _file(tmp_path, "ev2.yaml", CORE_EVENT), check=True)
    core = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json", check=True).stdout)
    by_name = {e["metadata"]["name"]: e for e in core["items"]}
    assert set(by_name) == {"hello.1", "core.1"}
    hello = by_name["hello.1"]
    assert hello["apiVersion"] == "v1"
    assert hello["message"] == "a note from events.k8s.io"
    assert hello["involvedObject"]["name"] == "p1"
    assert hello["reportingComponent"] == "example.com/ctrl"
    assert hello["series"]["count"] == 3
    assert hello["source"] == {} and hello["firstTimestamp"] is None

    new = json.loads(cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json", check=True).stdout)
    by_name = {e["metadata"]["name"]: e for e in new["items"]}
    pulled = by_name["core.1"]
    assert pulled["apiVersion"] == "events.k8s.io/v1"
    assert pulled["note"] == "a note from core"
    assert pulled["regarding"]["name"] == "p2"
    assert pulled["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert pulled["deprecatedCount"] == 4
    assert pulled["deprecatedFirstTimestamp"] == "2024-01-01T00:00:00Z"
    assert pulled["eventTime"] is None
    assert pulled["metadata"]["resourceVersion"] == by_name["core.1"]["metadata"]["resourceVersion"]

    table = cluster.kubectl("get", "events.events.k8s.io", "-n", ns, check=True).stdout
    assert header(table) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert {r[3] for r in rows(table)} == {"pod/p1", "pod/p2"}

    selected = cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "--field-selector", "regarding.name=p2",
                               "-o", "name", check=True).stdout.split()
    assert selected == ["event.events.k8s.io/core.1"]
    refused = cluster.kubectl("get", "events.events.k8s.io", "-n", ns, "--field-selector", "involvedObject.name=p2")
    assert "field label not supported: involvedObject.name" in refused.stderr

    # an update through events.k8s.io is seen by core readers
    cluster.kubectl("patch", "events.events.k8s.io", "core.1", "-n", ns, "--type", "merge",
                    "-p", '{"note": "patched"}', check=True)
    assert cluster.kubectl("get", "event", "core.1", "-n", ns, "-o", "jsonpath={.message}",
                           check=True).stdout == "patched"
    # watch through events.k8s.io streams the converted objects
    stream = cluster.kubectl("get", "--raw", f"/apis/events.k8s.io/v1/namespaces/{ns}/events?watch=1&"
                             "timeoutSeconds=1", check=True).stdout
    watched = {json.loads(line)["object"]["metadata"]["name"]: json.loads(line)["object"]
               for line in stream.splitlines() if line.strip()}
    assert watched["core.1"]["note"] == "patched" and watched["core.1"]["apiVersion"] == "events.k8s.io/v1"
    cluster.kubectl("delete", "events.events.k8s.io", "hello.1", "-n", ns, check=True)
    left = cluster.kubectl("get", "events", "-n", ns, "-o", "name", check=True).stdout.split()
    assert left == ["event/core.1"]


def test_kubectl_events_lists_both_kinds_of_event(cluster, tmp_path, ns):
    cluster.kubectl("create", "-n", ns, "-f", _file(tmp_path, "ev1.yaml",
                                                   EVENTS_V1.replace("hello.1", "hello.2")), check=True)
    out = cluster.kubectl("events", "-n", ns, check=True).stdout
    assert header(out) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "Pod/p1" in out and "a note from events.k8s.io" in out


STORED_KINDS = {
    # name: (short names, apiVersion, namespaced, kind)
    "componentstatuses": ("cs", "v1", "false", "ComponentStatus"),
    "bindings": ("", "v1", "true", "Binding"),
    "horizontalpodautoscalers": ("hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"),
    "runtimeclasses": ("", "node.k8s.io/v1", "false", "RuntimeClass"),
    "csidrivers": ("", "storage.k8s.io/v1", "false", "CSIDriver"),
    "csinodes": ("", "storage.k8s.io/v1", "false", "CSINode"),
    "csistoragecapacities": ("", "storage.k8s.io/v1", "true", "CSIStorageCapacity"),
    "volumeattachments": ("", "storage.k8s.io/v1", "false", "VolumeAttachment"),
    "validatingwebhookconfigurations": ("", "admissionregistration.k8s.io/v1", "false",
                                        "ValidatingWebhookConfiguration"),
    "mutatingwebhookconfigurations": ("", "admissionregistration.k8s.io/v1", "false",
                                      "MutatingWebhookConfiguration"),
    "validatingadmissionpolicies": ("", "admissionregistration.k8s.io/v1", "false", "ValidatingAdmissionPolicy"),
    "validatingadmissionpolicybindings": ("", "admissionregistration.k8s.io/v1", "false",
                                          "ValidatingAdmissionPolicyBinding"),
    "flowschemas": ("", "flowcontrol.apiserver.k8s.io/v1", "false", "FlowSchema"),
    "prioritylevelconfigurations": ("", "flowcontrol.apiserver.k8s.io/v1", "false", "PriorityLevelConfiguration"),
    "ipaddresses": ("ip", "networking.k8s.io/v1", "false", "IPAddress"),
    "servicecidrs": ("", "networking.k8s.io/v1", "false", "ServiceCIDR"),
}


def test_api_resources_lists_the_stored_kinds(cluster):
    out = cluster.kubectl("api-resources", check=True).stdout
    found = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 5:
            found[(parts[0], parts[2])] = (parts[1], parts[2], parts[3], parts[4])
        elif len(parts) == 4:
            found[(parts[0], parts[1])] = ("", parts[1], parts[2], parts[3])
    for name, want in STORED_KINDS.items():
        assert found.get((name, want[1])) == want, name
    wide = cluster.kubectl("api-resources", "-o", "wide", "--api-group", "admissionregistration.k8s.io",
                           check=True).stdout
    assert all("api-extensions" in line for line in wide.splitlines()[1:])


def test_componentstatuses(cluster):
    result = cluster.kubectl("get", "cs", check=True)
    assert header(result.stdout) == ["NAME", "STATUS", "MESSAGE", "ERROR"]
    assert [r[:3] for r in rows(result.stdout)] == [
        ["controller-manager", "Healthy", "ok"], ["etcd-0", "Healthy", "ok"], ["scheduler", "Healthy", "ok"]]
    assert "Warning: v1 ComponentStatus is deprecated in v1.19+" in result.stderr
    assert cluster.kubectl("delete", "cs", "scheduler").returncode != 0


def test_hpa_through_autoscaling_v1_and_v2(cluster, ns):
    cluster.kubectl("create", "deployment", "scaled", "--image=nginx", "-n", ns, check=True)
    out = cluster.kubectl("autoscale", "deployment", "scaled", "--min=1", "--max=3", "--cpu-percent=70", "-n", ns,
                          check=True).stdout
    assert out.strip() == "horizontalpodautoscaler.autoscaling/scaled autoscaled"
    table = cluster.kubectl("get", "hpa", "-n", ns, check=True).stdout
    assert header(table) == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert rows(table)[0][:6] == ["scaled", "Deployment/scaled", "cpu: <unknown>/70%", "1", "3", "0"]
    v1 = json.loads(cluster.kubectl("get", "--raw", f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers/"
                                    "scaled", check=True).stdout)
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    v2 = json.loads(cluster.kubectl("get", "hpa", "scaled", "-n", ns, "-o", "json", check=True).stdout)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert "horizontalpodautoscaler.autoscaling/scaled" in cluster.kubectl("get", "all", "-n", ns,
                                                                            check=True).stdout


def test_stored_kinds_print_upstream_columns(cluster, tmp_path):
    manifest = """apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: kmore-gvisor
handler: runsc
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: kmore-hooks
webhooks:
- name: a.example.com
  admissionReviewVersions: ["v1"]
  sideEffects: None
  clientConfig:
    url: https://example.com/validate
"""
    cluster.kubectl("apply", "-f", _file(tmp_path, "stored.yaml", manifest), check=True)
    rc = cluster.kubectl("get", "runtimeclass", "kmore-gvisor", check=True).stdout
    assert header(rc) == ["NAME", "HANDLER", "AGE"] and rows(rc)[0][:2] == ["kmore-gvisor", "runsc"]
    hooks = cluster.kubectl("get", "validatingwebhookconfigurations", "kmore-hooks", check=True).stdout
    assert header(hooks) == ["NAME", "WEBHOOKS", "AGE"] and rows(hooks)[0][:2] == ["kmore-hooks", "1"]


def test_legacy_bindings_endpoint_binds_a_pod(cluster, tmp_path, ns):
    pod = f"""apiVersion: v1
kind: Pod
metadata:
  name: unbound
  namespace: {ns}
spec:
  containers:
  - name: c
    image: nginx
"""
    cluster.kubectl("create", "-f", _file(tmp_path, "pod.yaml", pod), check=True)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "unbound"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-x"}}
    cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{ns}/bindings",
                    "-f", _file(tmp_path, "binding.json", json.dumps(binding)), check=True)
    assert cluster.kubectl("get", "pod", "unbound", "-n", ns, "-o", "jsonpath={.spec.nodeName}",
                           check=True).stdout == "node-x"
