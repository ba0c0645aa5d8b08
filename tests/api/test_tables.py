"""Server-side printing: Table shape, includeObject, and per-kind cells as upstream's printers compute them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubelite.api.errors import ApiError
from kubelite.api.resources import Registry, ResourceType
from kubelite.api.tables import (
    TABLE_CONTENT_TYPE,
    check_include_object,
    jsonpath,
    printer_for,
    table_accepted,
    to_table,
    to_table_event,
)
from kubelite.api.timefmt import format_rfc3339, human_duration, parse_rfc3339, short_human_duration, since

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
REG = Registry()


def rt(resource: str, group: str = "") -> ResourceType:
    for t in REG:
        if t.resource == resource and t.group == group:
            return t
    raise KeyError(resource)


def ago(**kw: float) -> str:
    return format_rfc3339(NOW - timedelta(**kw))


def cells(resource: str, obj: dict, group: str = "") -> list:
    return to_table(rt(resource, group), [obj], now=NOW)["rows"][0]["cells"]


def headers(resource: str, group: str = "") -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in to_table(rt(resource, group), [], now=NOW)["columnDefinitions"]]


def pod(name: str = "web", *, spec: dict | None = None, status: dict | None = None, **meta) -> dict:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": "u-" + name, "resourceVersion": "7",
                     "creationTimestamp": ago(minutes=5), "labels": {"app": "web"}, **meta},
        "spec": spec or {"containers": [{"name": "app", "image": "nginx:1.25"}]},
        "status": status or {},
    }


def running(name: str = "app", restarts: int = 0, ready: bool = True, **extra) -> dict:
    return {"name": name, "ready": ready, "restartCount": restarts, "started": True,
            "state": {"running": {"startedAt": ago(minutes=4)}}, **extra}


# ------------------------------------------------------------------ durations and timestamps

@pytest.mark.parametrize("seconds,expected", [
    (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (123, "2m3s"), (9 * 60 + 59, "9m59s"), (10 * 60, "10m"),
    (179 * 60, "179m"), (3 * 3600, "3h"), (4 * 3600 + 5 * 60, "4h5m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (3 * 86400 + 4 * 3600, "3d4h"), (12 * 86400, "12d"), (729 * 86400, "729d"),
    (730 * 86400, "2y"), (731 * 86400, "2y1d"), (9 * 365 * 86400, "9y"), (-1, "0s"), (-5, "<invalid>"),
])
def test_human_duration_matches_upstream(seconds, expected):
    assert human_duration(seconds) == expected


def test_short_human_duration_and_since():
    assert short_human_duration(59) == "59s"
    assert short_human_duration(3700) == "1h"
    assert since(None, NOW) == "<unknown>"
    assert since("", NOW) == "<unknown>"
    assert since(ago(seconds=30), NOW) == "30s"


def test_rfc3339_parsing_handles_fractions_and_offsets():
    assert parse_rfc3339("2024-05-01T12:00:00.123456789Z") == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert parse_rfc3339("2024-05-01T14:00:00+02:00") == NOW
    assert parse_rfc3339("not a time") is None
    assert format_rfc3339(NOW) == "2024-05-01T12:00:00Z"


# ------------------------------------------------------------------ table shape

def test_table_shape_and_list_metadata():
    t = to_table(rt("pods"), [pod()], resource_version="1011", continue_token="abc", remaining=3, now=NOW)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "1011", "continue": "abc", "remainingItemCount": 3}
    for col in t["columnDefinitions"]:
        assert set(col) == {"name", "type", "format", "description", "priority"}
    name_col = t["columnDefinitions"][0]
    assert name_col["format"] == "name" and name_col["description"].startswith("Name must be unique")
    assert t["columnDefinitions"][4]["description"].startswith("CreationTimestamp is a timestamp")
    assert len(t["rows"]) == 1 and len(t["rows"][0]["cells"]) == len(t["columnDefinitions"])


def test_empty_metadata_and_no_rows():
    t = to_table(rt("pods"), [], now=NOW)
    assert t["metadata"] == {} and t["rows"] == []


def test_include_object_variants():
    p = pod()
    meta = to_table(rt("pods"), [p], now=NOW)["rows"][0]["object"]
    assert meta == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]}
    full = to_table(rt("pods"), [p], include_object="Object", now=NOW)["rows"][0]["object"]
    assert full["kind"] == "Pod" and full["apiVersion"] == "v1" and full["spec"] == p["spec"]
    none = to_table(rt("pods"), [p], include_object="None", now=NOW)["rows"][0]
    assert none["object"] is None
    assert check_include_object(None) == "Metadata" and check_include_object("") == "Metadata"
    with pytest.raises(ApiError) as e:
        to_table(rt("pods"), [p], include_object="Everything", now=NOW)
    assert e.value.code == 400 and e.value.message == 'unrecognized includeObject value: "Everything"'


def test_watch_event_table_has_columns_and_one_row():
    p = pod()
    t = to_table_event(rt("pods"), p, now=NOW)
    assert t["kind"] == "Table" and len(t["rows"]) == 1
    assert t["metadata"]["resourceVersion"] == "7"
    assert [c["name"] for c in t["columnDefinitions"]][:2] == ["Name", "Ready"]
    assert to_table_event(rt("pods"), p, now=NOW, no_headers=True)["columnDefinitions"] == []


def test_table_accept_negotiation():
    kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert table_accepted(kubectl) == "v1"
    assert table_accepted("application/json;as=Table;v=v1beta1;g=meta.k8s.io") == "v1beta1"
    assert table_accepted("application/json") is None
    assert table_accepted(None) is None
    assert TABLE_CONTENT_TYPE == "application/json;as=Table;v=v1;g=meta.k8s.io"


# ------------------------------------------------------------------ pods

def test_pod_columns():
    assert headers("pods") == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1),
                               ("Node", 1), ("Nominated Node", 1), ("Readiness Gates", 1)]


def test_pod_running():
    p = pod(spec={"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"},
            status={"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                    "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [running()]})
    assert cells("pods", p) == ["web", "1/1", "Running", "0", "5m", "10.244.0.5", "node-1", "<none>", "<none>"]


def test_pod_pending_unscheduled_and_container_creating():
    assert cells("pods", pod(status={"phase": "Pending"}))[:5] == ["web", "0/1", "Pending", "0", "5m"]
    creating = pod(spec={"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
                   status={"phase": "Pending", "containerStatuses": [
                       {"name": "a", "ready": False, "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}}},
                       {"name": "b", "ready": False, "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}}}]})
    c = cells("pods", creating)
    assert c[1:4] == ["0/2", "ContainerCreating", "0"] and c[5] == "<none>" and c[6] == "n1"


def test_pod_crashloop_with_restart_age():
    p = pod(status={"phase": "Running", "containerStatuses": [{
        "name": "app", "ready": False, "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(seconds=90)}}}]})
    assert cells("pods", p)[1:4] == ["0/1", "CrashLoopBackOff", "5 (90s ago)"]


def test_pod_image_pull_errors():
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        p = pod(status={"phase": "Pending", "containerStatuses": [
            {"name": "app", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}]})
        assert cells("pods", p)[2] == reason


def test_pod_completed_and_failed_rows_carry_conditions():
    done = pod(status={"phase": "Succeeded", "containerStatuses": [{
        "name": "app", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(minutes=1)}}}]})
    row = to_table(rt("pods"), [done], now=NOW)["rows"][0]
    assert row["cells"][1:4] == ["0/1", "Completed", "0"]
    assert row["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                  "message": "The pod has completed successfully."}]
    failed = pod(status={"phase": "Failed", "containerStatuses": [{
        "name": "app", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})
    row = to_table(rt("pods"), [failed], now=NOW)["rows"][0]
    assert row["cells"][2] == "Signal:9" and row["conditions"][0]["reason"] == "Failed"
    no_reason = pod(status={"phase": "Failed", "containerStatuses": [{
        "name": "app", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]})
    assert cells("pods", no_reason)[2] == "ExitCode:3"
    evicted = pod(status={"phase": "Failed", "reason": "Evicted", "message": "low on memory"})
    assert cells("pods", evicted)[2] == "Evicted"


def test_pod_completed_with_a_running_container_shows_running_or_notready():
    statuses = [running("b"), {"name": "a", "ready": False, "restartCount": 0,
                               "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
    spec = {"containers": [{"name": "a"}, {"name": "b"}]}
    ready = pod(spec=spec, status={"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                                   "containerStatuses": list(reversed(statuses))})
    assert cells("pods", ready)[1:3] == ["1/2", "Running"]
    not_ready = pod(spec=spec, status={"phase": "Running", "containerStatuses": list(reversed(statuses))})
    assert cells("pods", not_ready)[2] == "NotReady"


def test_pod_init_containers():
    spec = {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "app"}]}
    done = {"name": "i1", "ready": True, "restartCount": 0, "state": {"terminated": {"exitCode": 0,
                                                                                      "reason": "Completed"}}}
    second_running = {"name": "i2", "ready": False, "restartCount": 0, "state": {"running": {}}}
    app_waiting = {"name": "app", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
    p = pod(spec=spec, status={"phase": "Pending", "initContainerStatuses": [done, second_running],
                               "containerStatuses": [app_waiting]})
    assert cells("pods", p)[1:4] == ["0/1", "Init:1/2", "0"]

    crash = {"name": "i1", "ready": False, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}}}
    waiting = {"name": "i2", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
    p = pod(spec=spec, status={"phase": "Pending", "initContainerStatuses": [crash, waiting],
                               "containerStatuses": [app_waiting]})
    assert cells("pods", p)[2:4] == ["Init:CrashLoopBackOff", "3 (2m ago)"]

    failed = {"name": "i1", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
    p = pod(spec=spec, status={"phase": "Failed", "initContainerStatuses": [failed]})
    assert cells("pods", p)[2] == "Init:ExitCode:2"
    failed = {"name": "i1", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 1,
                                                                                         "reason": "Error"}}}
    assert cells("pods", pod(spec=spec, status={"phase": "Failed", "initContainerStatuses": [failed]}))[2] == \
        "Init:Error"


def test_pod_sidecar_init_container_counts_as_container():
    spec = {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}
    p = pod(spec=spec, status={
        "phase": "Running", "conditions": [{"type": "Initialized", "status": "True"},
                                           {"type": "Ready", "status": "True"}],
        "initContainerStatuses": [running("proxy", restarts=1, lastState={"terminated": {"finishedAt": ago(hours=1)}})],
        "containerStatuses": [running("app")]})
    assert cells("pods", p)[1:4] == ["2/2", "Running", "1 (60m ago)"]


def test_pod_terminating_nodelost_and_scheduling_gated():
    deleting = pod(deletionTimestamp=ago(seconds=10),
                   status={"phase": "Running", "containerStatuses": [running()]})
    assert cells("pods", deleting)[2] == "Terminating"
    finished = pod(deletionTimestamp=ago(seconds=10), status={"phase": "Succeeded"})
    assert cells("pods", finished)[2] == "Succeeded"
    lost = pod(deletionTimestamp=ago(seconds=10), status={"phase": "Running", "reason": "NodeLost"})
    assert cells("pods", lost)[2] == "Unknown"
    gated = pod(status={"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]})
    assert cells("pods", gated)[2] == "SchedulingGated"


def test_pod_wide_cells_nominated_node_and_readiness_gates():
    p = pod(spec={"containers": [{"name": "app"}], "readinessGates": [{"conditionType": "example.com/lb"},
                                                                      {"conditionType": "example.com/dns"}]},
            status={"phase": "Pending", "nominatedNodeName": "node-2", "podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.5"}],
                    "conditions": [{"type": "example.com/lb", "status": "True"},
                                   {"type": "example.com/dns", "status": "False"}]})
    assert cells("pods", p)[5:] == ["fd00::5", "<none>", "node-2", "1/2"]


# ------------------------------------------------------------------ other kinds

def test_namespace_and_generic_fallback():
    ns = {"metadata": {"name": "dev", "creationTimestamp": ago(days=3, hours=4)}, "status": {"phase": "Active"}}
    assert headers("namespaces") == [("Name", 0), ("Status", 0), ("Age", 0)]
    assert cells("namespaces", ns) == ["dev", "Active", "3d4h"]
    crd_rt = ResourceType("example.com", "v1", "widgets", "Widget", True, "/registry/example.com/widgets/")
    t = to_table(crd_rt, [{"metadata": {"name": "w1", "creationTimestamp": ago(seconds=42)}},
                          {"metadata": {"name": "w2"}}], now=NOW)
    assert [(c["name"], c["type"]) for c in t["columnDefinitions"]] == [("Name", "string"), ("Age", "date")]
    assert [r["cells"] for r in t["rows"]] == [["w1", "42s"], ["w2", "<unknown>"]]


def test_custom_resource_printer_columns():
    cols = [{"name": "Color", "type": "string", "jsonPath": ".spec.color"},
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Ports", "type": "string", "jsonPath": ".spec.ports[*].port", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    crd_rt = ResourceType("example.com", "v1", "widgets", "Widget", True, "/registry/example.com/widgets/",
                          extra={"additionalPrinterColumns": cols})
    obj = {"metadata": {"name": "w", "creationTimestamp": ago(hours=2)},
           "spec": {"color": "blue", "size": 3, "ports": [{"port": 80}, {"port": 443}]},
           "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}}
    t = to_table(crd_rt, [obj, {"metadata": {"name": "bare"}}], now=NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Color", "Size", "Ready", "Ports", "Age"]
    assert t["columnDefinitions"][4]["priority"] == 1
    assert t["rows"][0]["cells"] == ["w", "blue", 3, "True", "80", "120m"]
    assert t["rows"][1]["cells"] == ["bare", None, None, None, None, None]
    assert jsonpath(obj, "{.spec.ports[1].port}") == [443]


def test_builtin_without_printer_uses_default_convertor():
    role = {"metadata": {"name": "reader", "namespace": "default", "creationTimestamp": "2024-04-30T10:00:00Z"}}
    assert headers("roles", "rbac.authorization.k8s.io") == [("Name", 0), ("Created At", 0)]
    assert cells("roles", role, "rbac.authorization.k8s.io") == ["reader", "2024-04-30T10:00:00Z"]
    assert printer_for(rt("limitranges")).columns[1].name == "Created At"


def _template(*containers: tuple[str, str]) -> dict:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": n, "image": i} for n, i in containers]}}


def test_deployment_and_replicaset():
    d = {"metadata": {"name": "web", "creationTimestamp": ago(minutes=12)},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": _template(("nginx", "nginx:1.25"), ("sidecar", "busybox"))},
         "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert headers("deployments", "apps") == [("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0),
                                              ("Age", 0), ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert cells("deployments", d, "apps") == ["web", "2/3", 3, 2, "12m", "nginx,sidecar", "nginx:1.25,busybox",
                                               "app=web"]
    rs = {"metadata": {"name": "web-5d", "creationTimestamp": ago(minutes=12)},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d"}},
                   "template": _template(("nginx", "nginx:1.25"))},
          "status": {"replicas": 3, "readyReplicas": 3}}
    assert cells("replicasets", rs, "apps") == ["web-5d", 3, 3, 3, "12m", "nginx", "nginx:1.25",
                                                "app=web,pod-template-hash=5d"]


def test_services():
    base = {"metadata": {"name": "svc", "creationTimestamp": ago(hours=26)}}
    cluster = {**base, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                                "selector": {"k8s-app": "kube-dns"}}}
    assert headers("services")[-1] == ("Selector", 1)
    assert cells("services", cluster) == ["svc", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "26h",
                                          "k8s-app=kube-dns"]
    nodeport = {**base, "spec": {"type": "NodePort", "clusterIPs": ["10.96.1.1"], "externalIPs": ["1.2.3.4"],
                                 "ports": [{"port": 80, "nodePort": 30247, "protocol": "TCP"}]}}
    assert cells("services", nodeport)[2:5] == ["10.96.1.1", "1.2.3.4", "80:30247/TCP"]
    pending = {**base, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"], "ports": []}}
    assert cells("services", pending)[3:5] == ["<pending>", "<none>"]
    lb = {**base, "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"], "externalIPs": ["9.9.9.9"]},
          "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}}
    assert cells("services", lb)[3] == "5.6.7.8,lb.example.com,9.9.9.9"
    headless = {**base, "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}}
    assert cells("services", headless)[2:4] == ["None", "<none>"]
    ext = {**base, "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert cells("services", ext)[2:4] == ["<none>", "db.example.com"]


def test_nodes():
    node = {"metadata": {"name": "node-1", "creationTimestamp": ago(days=12),
                         "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master",
                                    "node-role.kubernetes.io/": "x"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                                     {"type": "Hostname", "address": "node-1"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}}}
    assert [h for h, _ in headers("nodes")] == ["Name", "Status", "Roles", "Age", "Version", "Internal-IP",
                                                "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]
    assert cells("nodes", node) == ["node-1", "Ready,SchedulingDisabled", "control-plane,master", "12d", "v1.33.0",
                                    "172.18.0.2", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0",
                                    "containerd://1.7.0"]
    bare = {"metadata": {"name": "n2", "creationTimestamp": ago(seconds=3)}, "status": {}}
    assert cells("nodes", bare) == ["n2", "Unknown", "<none>", "3s", "", "<none>", "<none>", "<unknown>",
                                    "<unknown>", "<unknown>"]
    not_ready = {**bare, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert cells("nodes", not_ready)[1] == "NotReady"


def test_configmaps_secrets_serviceaccounts():
    meta = {"name": "x", "creationTimestamp": ago(seconds=20)}
    assert cells("configmaps", {"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}) == \
        ["x", 3, "20s"]
    assert cells("secrets", {"metadata": meta, "type": "Opaque", "data": {"k": "dg=="}}) == ["x", "Opaque", 1, "20s"]
    assert headers("secrets") == [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]
    assert cells("serviceaccounts", {"metadata": meta}) == ["x", 0, "20s"]


def test_events_core_and_events_v1():
    ev = {"metadata": {"name": "web.17a", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{app}"},
          "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n", "type": "Normal",
          "source": {"component": "kubelet", "host": "node-1"},
          "firstTimestamp": ago(minutes=3), "lastTimestamp": ago(seconds=30), "count": 4}
    assert [h for h, _ in headers("events")] == ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source",
                                                 "Message", "First Seen", "Count", "Name"]
    assert cells("events", ev) == ["30s", "Normal", "Pulled", "pod/web", "spec.containers{app}", "kubelet, node-1",
                                   'Successfully pulled image "nginx"', "3m", 4, "web.17a"]
    new_style = {"metadata": {"name": "e2"}, "involvedObject": {"kind": "Node"}, "reason": "Starting",
                 "type": "Normal", "eventTime": "2024-05-01T11:59:50.000000Z", "reportingComponent": "kube-proxy",
                 "reportingInstance": "node-1"}
    assert cells("events", new_style)[:9] == ["10s", "Normal", "Starting", "node", "", "kube-proxy, node-1", "",
                                              "10s", 1]
    v1 = {"apiVersion": "events.k8s.io/v1", "metadata": {"name": "e3"}, "regarding": {"kind": "Pod", "name": "p"},
          "note": "hello", "reason": "R", "type": "Warning", "eventTime": "2024-05-01T11:58:00.000000Z",
          "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:00.000000Z"},
          "reportingController": "ctrl", "reportingInstance": "ctrl-1"}
    assert cells("events", v1, "events.k8s.io") == ["60s", "Warning", "R", "pod/p", "", "ctrl, ctrl-1", "hello",
                                                    "2m", 7, "e3"]


def test_workloads_statefulset_daemonset_jobs_cronjobs_rc():
    meta = {"name": "w", "creationTimestamp": ago(minutes=30)}
    sts = {"metadata": meta, "spec": {"replicas": 3, "template": _template(("db", "postgres:16"))},
           "status": {"readyReplicas": 1}}
    assert cells("statefulsets", sts, "apps") == ["w", "1/3", "30m", "db", "postgres:16"]
    ds = {"metadata": meta, "spec": {"selector": {"matchLabels": {"app": "agent"}},
                                     "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                                           "containers": [{"name": "a", "image": "agent:1"}]}}},
          "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                     "updatedNumberScheduled": 2, "numberAvailable": 1}}
    assert cells("daemonsets", ds, "apps") == ["w", 2, 2, 1, 2, 1, "kubernetes.io/os=linux", "30m", "a", "agent:1",
                                               "app=agent"]
    job = {"metadata": meta, "spec": {"completions": 1, "parallelism": 1, "template": _template(("pi", "perl")),
                                      "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}},
           "status": {"succeeded": 1, "startTime": ago(minutes=20), "completionTime": ago(minutes=19, seconds=15),
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert cells("jobs", job, "batch") == ["w", "Complete", "1/1", "45s", "30m", "pi", "perl",
                                           "batch.kubernetes.io/controller-uid=u1"]
    running_job = {"metadata": meta, "spec": {"parallelism": 3, "template": _template(("pi", "perl"))},
                   "status": {"startTime": ago(minutes=2)}}
    assert cells("jobs", running_job, "batch")[1:4] == ["Running", "0/1 of 3", "2m"]
    assert cells("jobs", {"metadata": meta, "spec": {}, "status": {}}, "batch")[1:4] == ["Running", "0/1", ""]
    cj = {"metadata": meta, "spec": {"schedule": "*/5 * * * *", "suspend": False,
                                     "jobTemplate": {"spec": {"template": _template(("c", "busybox"))}}},
          "status": {"active": [{"name": "j1"}], "lastScheduleTime": ago(minutes=3)}}
    assert cells("cronjobs", cj, "batch") == ["w", "*/5 * * * *", "<none>", "False", 1, "3m", "30m", "c", "busybox",
                                              "<none>"]
    rc = {"metadata": meta, "spec": {"replicas": 2, "selector": {"app": "old"}, "template": _template(("c", "i"))},
          "status": {"replicas": 2, "readyReplicas": 2}}
    assert cells("replicationcontrollers", rc) == ["w", 2, 2, 2, "30m", "c", "i", "app=old"]


def test_storage_kinds():
    meta = {"name": "v", "creationTimestamp": ago(days=1)}
    pv = {"metadata": meta, "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    assert cells("persistentvolumes", pv) == ["v", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "fast",
                                              "<unset>", "", "24h", "Filesystem"]
    pvc = {"metadata": meta, "spec": {"volumeName": "pv-1", "storageClassName": "fast",
                                      "resources": {"requests": {"storage": "1Gi"}}},
           "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"]}}
    assert cells("persistentvolumeclaims", pvc) == ["v", "Bound", "pv-1", "2Gi", "RWO", "fast", "<unset>", "24h",
                                                    "<unset>"]
    pending = {"metadata": {**meta, "deletionTimestamp": ago(seconds=1)}, "spec": {}, "status": {"phase": "Pending"}}
    assert cells("persistentvolumeclaims", pending)[1:5] == ["Terminating", "", "", ""]
    sc = {"metadata": {**meta, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
          "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
    assert cells("storageclasses", sc, "storage.k8s.io") == ["v (default)", "rancher.io/local-path", "Delete",
                                                            "WaitForFirstConsumer", False, "24h"]


def test_networking_rbac_and_others():
    meta = {"name": "x", "namespace": "default", "creationTimestamp": ago(hours=1)}
    ing = {"metadata": meta, "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.com"]}],
                                      "rules": [{"host": "a.com"}, {"host": "b.com"}, {}, {"host": "d.com"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}}
    assert cells("ingresses", ing, "networking.k8s.io") == ["x", "nginx", "a.com,b.com,d.com", "1.1.1.1", "80, 443",
                                                           "60m"]
    many = {"metadata": meta, "spec": {"rules": [{"host": f"h{i}.com"} for i in range(5)]}}
    assert cells("ingresses", many, "networking.k8s.io")[1:5] == ["<none>", "h0.com,h1.com,h2.com + 2 more...", "",
                                                                  "80"]
    ic = {"metadata": meta, "spec": {"controller": "k8s.io/ingress-nginx",
                                     "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                                                    "name": "p"}}}
    assert cells("ingressclasses", ic, "networking.k8s.io")[1:3] == ["k8s.io/ingress-nginx",
                                                                     "IngressParameters.k8s.example.com/p"]
    np = {"metadata": meta, "spec": {"podSelector": {}}}
    assert cells("networkpolicies", np, "networking.k8s.io") == ["x", "<none>", "60m"]
    rb = {"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": "view"},
          "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                       {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}, {"kind": "User", "name": "bob"}]}
    assert cells("rolebindings", rb, "rbac.authorization.k8s.io") == ["x", "ClusterRole/view", "60m", "alice, bob",
                                                                     "devs", "tools/ci"]
    lease = {"metadata": meta, "spec": {"holderIdentity": "node-1"}}
    assert cells("leases", lease, "coordination.k8s.io") == ["x", "node-1", "60m"]
    es = {"metadata": meta, "addressType": "IPv4", "ports": [{"port": 80}, {"name": "https"}, {}, {"port": 9}],
          "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}
    assert cells("endpointslices", es, "discovery.k8s.io") == ["x", "IPv4", "80,https,* + 1 more...",
                                                              "10.0.0.1,10.0.0.2", "60m"]
    assert cells("endpointslices", {"metadata": meta}, "discovery.k8s.io")[2:4] == ["<unset>", "<unset>"]
    ep = {"metadata": meta, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                                         "ports": [{"port": 80}, {"port": 443}]}]}
    assert cells("endpoints", ep) == ["x", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "60m"]
    assert cells("endpoints", {"metadata": meta}) == ["x", "<none>", "60m"]
    pdb = {"metadata": meta, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}
    assert cells("poddisruptionbudgets", pdb, "policy") == ["x", "50%", "N/A", 1, "60m"]
    pc = {"metadata": meta, "value": 1000, "globalDefault": True, "preemptionPolicy": "Never"}
    assert cells("priorityclasses", pc, "scheduling.k8s.io") == ["x", 1000, True, "60m", "Never"]
    rq = {"metadata": meta, "status": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi", "pods": "10"},
                                       "used": {"requests.cpu": "500m", "pods": "3"}}}
    assert cells("resourcequotas", rq) == ["x", "pods: 3/10, requests.cpu: 500m/1", "limits.memory: 0/1Gi", "60m"]
    cr = {"metadata": {**meta, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                                    "controller": True}]}, "revision": 2}
    assert cells("controllerrevisions", cr, "apps") == ["x", "daemonset.apps/agent", 2, "60m"]
    pt = {"metadata": meta, "template": _template(("a", "img"))}
    assert cells("podtemplates", pt) == ["x", "a", "img", "app=web"]
