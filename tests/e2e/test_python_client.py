"""The official `kubernetes` Python client against kubelite: CRUD, list, watch with resume, conflicts."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture(scope="module")
def api(cluster):
    api_client = config.new_client_from_config(config_file=cluster.kubeconfig)
    core = client.CoreV1Api(api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pyclient"}})
    return api_client


def test_configmap_crud_and_conflict(api):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map("pyclient", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg", labels={"app": "x"}), data={"a": "1"}))
    assert created.metadata.uid and created.metadata.resource_version
    got = core.read_namespaced_config_map("cfg", "pyclient")
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    updated = core.replace_namespaced_config_map("cfg", "pyclient", got)
    assert int(updated.metadata.resource_version) > int(got.metadata.resource_version)
    # a stale resourceVersion must be refused with 409 Conflict
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cfg", "pyclient", got)
    assert err.value.status == 409
    assert "the object has been modified; please apply your changes to the latest version" in err.value.body
    patched = core.patch_namespaced_config_map("cfg", "pyclient", {"data": {"c": "3"}})
    assert patched.data == {"a": "1", "b": "2", "c": "3"}
    listed = core.list_namespaced_config_map("pyclient", label_selector="app=x")
    assert [c.metadata.name for c in listed.items] == ["cfg"]
    core.delete_namespaced_config_map("cfg", "pyclient")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("cfg", "pyclient")
    assert err.value.status == 404


def test_pods_services_deployments(api):
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    pod = core.create_namespaced_pod("pyclient", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
    assert pod.status.phase == "Pending" and pod.spec.containers[0].image_pull_policy == "IfNotPresent"
    svc = core.create_namespaced_service("pyclient", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    assert svc.spec.cluster_ip.startswith("10.") and svc.spec.ports[0].target_port == 80
    dep = apps.create_namespaced_deployment("pyclient", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d1"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d1"}},
                 "template": {"metadata": {"labels": {"app": "d1"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    assert dep.metadata.generation == 1 and dep.spec.strategy.type == "RollingUpdate"
    dep.spec.template.spec.containers[0].image = "nginx:1.25"
    dep2 = apps.replace_namespaced_deployment("d1", "pyclient", dep)
    assert dep2.metadata.generation == 2
    scale = apps.patch_namespaced_deployment_scale("d1", "pyclient", {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5 and scale.status.selector == "app=d1"
    assert apps.read_namespaced_deployment("d1", "pyclient").spec.replicas == 5
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces().items if
            p.metadata.namespace == "pyclient"] == ["p1"]
    core.delete_namespaced_pod("p1", "pyclient")
    core.delete_namespaced_service("s1", "pyclient")
    apps.delete_namespaced_deployment("d1", "pyclient")


def test_watch_resumes_from_resource_version(api):
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("pyclient").metadata.resource_version
    core.create_namespaced_config_map("pyclient", {"metadata": {"name": "w1"}})
    core.patch_namespaced_config_map("w1", "pyclient", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w1", "pyclient")
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "pyclient", resource_version=start, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_sees_live_events(api):
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_config_map("pyclient").metadata.resource_version
    seen = []

    def writer():
        core.create_namespaced_config_map("pyclient", {"metadata": {"name": "live"}})

    timer = threading.Timer(0.5, writer)
    timer.start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "pyclient", resource_version=rv, timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        w.stop()
    timer.join()
    assert seen == [("ADDED", "live")]
    core.delete_namespaced_config_map("live", "pyclient")
