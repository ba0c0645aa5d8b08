from sched_helpers import pod

from kubelite.scheduler.podinfo import DEFAULT_MEMORY_REQUEST, PodInfo, quantity, tolerates


def test_quantities():
    assert quantity("500m", milli=True) == 500
    assert quantity("1", milli=True) == 1000
    assert quantity("0.1", milli=True) == 100
    assert quantity("1Gi") == 2**30
    assert quantity("1k") == 1000
    assert quantity("1.5") == 2  # rounded up as Quantity.Value()


def test_requests_sum_containers_max_init_and_overhead():
    p = pod("a")
    p["spec"]["containers"] = [
        {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "200m"}}},
    ]
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}]
    p["spec"]["overhead"] = {"cpu": "50m"}
    info = PodInfo(p)
    assert info.requests.cpu == 1050  # max(300, 1000) + 50
    assert info.requests.memory == 100 * 2**20
    # non-zero: container b has no memory request -> 200Mi default
    assert info.nz_mem == 100 * 2**20 + DEFAULT_MEMORY_REQUEST


def test_sidecar_init_containers_add_up():
    p = pod("a", "100m")
    p["spec"]["initContainers"] = [
        {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
        {"name": "init", "resources": {"requests": {"cpu": "250m"}}},
    ]
    # sidecar runs with the app (300m); the plain init runs beside the sidecar (450m)
    assert PodInfo(p).requests.cpu == 450


def test_no_requests_uses_defaults_for_scoring_only():
    info = PodInfo(pod("a"))
    assert info.requests.is_zero()
    assert info.nz_cpu == 100


def test_tolerations():
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates({"key": "k", "operator": "Equal", "value": "v"}, taint)
    assert tolerates({"key": "k", "value": "v", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": "k", "value": "w"}, taint)
    assert tolerates({"key": "k", "operator": "Exists"}, taint)
    assert tolerates({"operator": "Exists"}, taint)
    assert not tolerates({"operator": "Exists", "effect": "NoExecute"}, taint)
