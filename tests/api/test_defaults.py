"""Defaults as upstream's SetDefaults_* functions fill them (v1.33)."""

from __future__ import annotations

import copy

import pytest

from kubelite.api import defaults, validation
from kubelite.api.resources import BUILTIN

RT = {(r.group, r.kind): r for r in BUILTIN if r.group != "events.k8s.io"}

NGINX_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "nginx", "labels": {"name": "nginx"}},
    "spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80}]}]},
}
CONTAINER_DEFAULTS = {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                      "terminationMessagePolicy": "File", "resources": {}}
TEMPLATE_SPEC_DEFAULTS = {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                          "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}


def defaulted(group, kind, obj):
    obj = copy.deepcopy(obj)
    defaults.apply_defaults(RT[(group, kind)], obj)
    return obj


def template(image="nginx:1.27", labels=None):
    return {"metadata": {"labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}}


def test_tutorial_pod():
    pod = defaulted("", "Pod", NGINX_POD)
    assert pod["spec"] == {
        "containers": [{"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "resources": {}}],
        **TEMPLATE_SPEC_DEFAULTS, "enableServiceLinks": True,
    }
    assert pod["metadata"] == NGINX_POD["metadata"]
    assert "priority" not in pod["spec"] and "preemptionPolicy" not in pod["spec"]


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:v1", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"), ("nginx:latest@sha256:" + "a" * 64, "Always"),
])
def test_image_pull_policy(image, policy):
    assert defaults.image_pull_policy(image) == policy


def test_explicit_values_are_kept():
    pod = copy.deepcopy(NGINX_POD)
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    pod["spec"]["enableServiceLinks"] = False
    pod = defaulted("", "Pod", pod)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["spec"]["enableServiceLinks"] is False


def test_probes_volumes_env_and_limits():
    pod = copy.deepcopy(NGINX_POD)
    c = pod["spec"]["containers"][0]
    c["livenessProbe"] = {"httpGet": {"port": 80}}
    c["readinessProbe"] = {"tcpSocket": {"port": 80}, "periodSeconds": 5}
    c["env"] = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    c["resources"] = {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}}
    pod["spec"]["volumes"] = [{"name": "a"}, {"name": "b", "configMap": {"name": "c"}},
                              {"name": "c", "secret": {"secretName": "s"}},
                              {"name": "d", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]
    pod = defaulted("", "Pod", pod)
    c = pod["spec"]["containers"][0]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    vols = pod["spec"]["volumes"]
    assert vols[0] == {"name": "a", "emptyDir": {}}
    assert vols[1]["configMap"]["defaultMode"] == 420
    assert vols[2]["secret"]["defaultMode"] == 420
    assert vols[3]["projected"] == {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}],
                                    "defaultMode": 420}


def test_host_network_ports():
    pod = copy.deepcopy(NGINX_POD)
    pod["spec"]["hostNetwork"] = True
    pod = defaulted("", "Pod", pod)
    assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] == 80


def test_service():
    svc = defaulted("", "Service", {"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc["spec"] == {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                           "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                           "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}
    assert "clusterIP" not in svc["spec"]
    np = defaulted("", "Service", {"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}})
    assert np["spec"]["externalTrafficPolicy"] == "Cluster"
    assert np["spec"]["ports"][0]["targetPort"] == "http"
    assert "nodePort" not in np["spec"]["ports"][0]
    lb = defaulted("", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    ext = defaulted("", "Service", {"spec": {"type": "ExternalName", "externalName": "example.com"}})
    assert "ipFamilies" not in ext["spec"] and "internalTrafficPolicy" not in ext["spec"]


def test_deployment():
    d = defaulted("apps", "Deployment", {"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    spec = d["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"] == {"containers": [{"name": "web", "image": "nginx:1.27", **CONTAINER_DEFAULTS}],
                                        **TEMPLATE_SPEC_DEFAULTS}
    recreate = defaulted("apps", "Deployment", {"spec": {"strategy": {"type": "Recreate"}, "template": template()}})
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_replica_sets_and_rc():
    rs = defaulted("apps", "ReplicaSet", {"spec": {"template": template()}})
    assert rs["spec"]["replicas"] == 1
    rc = defaulted("", "ReplicationController", {"metadata": {"name": "rc"}, "spec": {"template": template()}})
    assert rc["spec"]["selector"] == {"app": "web"} and rc["metadata"]["labels"] == {"app": "web"}
    assert rc["spec"]["replicas"] == 1


def test_statefulset_daemonset():
    sts = defaulted("apps", "StatefulSet", {"spec": {"template": template(), "volumeClaimTemplates": [
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}})
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    ds = defaulted("apps", "DaemonSet", {"spec": {"template": template()}})
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10


def test_job_and_cronjob():
    job = defaulted("batch", "Job", {"metadata": {"name": "pi"}, "spec": {"template": template()}})
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "selector" not in spec and "manualSelector" not in spec
    assert job["metadata"]["labels"] == {"app": "web"}
    par = defaulted("batch", "Job", {"spec": {"parallelism": 3, "template": template()}})
    assert "completions" not in par["spec"]
    cj = defaulted("batch", "CronJob", {"spec": {"schedule": "* * * * *",
                                                 "jobTemplate": {"spec": {"template": template()}}}})
    spec = cj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert "completions" not in spec["jobTemplate"]["spec"]


def test_core_misc():
    assert defaulted("", "Secret", {"data": {}})["type"] == "Opaque"
    ns = defaulted("", "Namespace", {"metadata": {"name": "x"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    pvc = defaulted("", "PersistentVolumeClaim", {"spec": {"accessModes": ["ReadWriteOnce"]}})
    assert pvc["spec"]["volumeMode"] == "Filesystem"
    pv = defaulted("", "PersistentVolume", {"spec": {}})
    assert pv["spec"] == {"persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}
    lr = defaulted("", "LimitRange", {"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}})
    assert lr["spec"]["limits"][0]["default"] == {"cpu": "1"}
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "1"}


def test_other_groups():
    np = defaulted("networking.k8s.io", "NetworkPolicy", {"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}})
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    np2 = defaulted("networking.k8s.io", "NetworkPolicy", {"spec": {"podSelector": {}}})
    assert np2["spec"]["policyTypes"] == ["Ingress"]
    sc = defaulted("storage.k8s.io", "StorageClass", {"provisioner": "x"})
    assert (sc["reclaimPolicy"], sc["volumeBindingMode"]) == ("Delete", "Immediate")
    es = defaulted("discovery.k8s.io", "EndpointSlice", {"ports": [{"port": 80}]})
    assert es["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    pc = defaulted("scheduling.k8s.io", "PriorityClass", {"value": 10})
    assert pc["preemptionPolicy"] == "PreemptLowerPriority"
    rb = defaulted("rbac.authorization.k8s.io", "RoleBinding", {
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "b", "namespace": "n"}]})
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    # apiGroup is omitempty: the ServiceAccount subject's "" default leaves no key
    assert [s.get("apiGroup") for s in rb["subjects"]] == ["rbac.authorization.k8s.io", None]
    for kind in ("ConfigMap", "Node", "ResourceQuota", "ServiceAccount"):
        obj = {"metadata": {"name": "x"}}
        assert defaulted("", kind, obj) == obj


def test_defaulted_objects_validate():
    pod = defaulted("", "Pod", dict(NGINX_POD, metadata={**NGINX_POD["metadata"], "namespace": "default"}))
    validation.validate(RT[("", "Pod")], pod)
    d = defaulted("apps", "Deployment", {"metadata": {"name": "web", "namespace": "default"},
                                         "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    validation.validate(RT[("apps", "Deployment")], d)


def test_garbage_shapes_do_not_crash():
    for rt in RT.values():
        for garbage in ({}, {"spec": "x"}, {"spec": {"template": 3, "containers": "x", "ports": [1]}}):
            defaults.apply_defaults(rt, copy.deepcopy(garbage))
