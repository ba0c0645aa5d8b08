"""Go's zero values filled from the OpenAPI definitions (api/zerovalues.py)."""

from kubelite.api import zerovalues


def test_status_structs_get_their_non_omitempty_zeros():
    ds = zerovalues.fill("io.k8s.api.apps.v1.DaemonSet", {"metadata": {"name": "x"}, "spec": {}})
    assert ds["status"] == {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0,
                            "numberReady": 0}
    rc = zerovalues.fill("io.k8s.api.core.v1.ReplicationController", {"metadata": {}})
    assert rc["status"] == {"replicas": 0}
    svc = zerovalues.fill("io.k8s.api.core.v1.Service", {"metadata": {}, "spec": {}})
    assert svc["status"] == {"loadBalancer": {}}


def test_nested_required_fields_and_what_is_left_alone():
    crb = zerovalues.fill("io.k8s.api.rbac.v1.ClusterRoleBinding",
                          {"metadata": {}, "roleRef": {"kind": "ClusterRole", "name": "x"},
                           "subjects": [{"kind": "User", "name": "u"}]})
    assert crb["roleRef"]["apiGroup"] == ""
    pod = zerovalues.fill("io.k8s.api.core.v1.Pod", {
        "metadata": {}, "spec": {"containers": [{"name": "c"}]},
        "status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "", "state": {}}]}})
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"] is False and status["restartCount"] == 0
    assert "lastProbeTime" not in pod["status"]  # Time: Go's zero is null, which absence already means
    assert "conditions" not in pod["status"]  # lists are never made up
    # values already there, and values of the wrong type, are kept for validation to judge
    kept = zerovalues.fill("io.k8s.api.apps.v1.DaemonSet", {"metadata": {}, "status": {"numberReady": 3}})
    assert kept["status"]["numberReady"] == 3
    assert zerovalues.fill("io.k8s.api.apps.v1.DaemonSet", {"metadata": {}, "status": "x"})["status"] == "x"
    assert zerovalues.fill("no.such.Definition", {"a": 1}) == {"a": 1}
