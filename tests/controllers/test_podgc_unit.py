"""Pod GC decisions."""

from __future__ import annotations

from kubelite.controllers.podgc import out_of_service, terminated_to_delete


def pod(name, phase, created):
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}


def test_oldest_terminated_pods_beyond_threshold():
    pods = [pod("a", "Succeeded", "2024-01-01T00:00:03Z"), pod("b", "Failed", "2024-01-01T00:00:01Z"),
            pod("c", "Running", "2024-01-01T00:00:00Z"), pod("d", "Succeeded", "2024-01-01T00:00:02Z")]
    assert [p["metadata"]["name"] for p in terminated_to_delete(pods, 1)] == ["b", "d"]
    assert terminated_to_delete(pods, 3) == []
    assert terminated_to_delete(pods, 0) == []  # disabled


def test_out_of_service_taint():
    assert out_of_service({"spec": {"taints": [{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]}})
    assert not out_of_service({"spec": {}})
