"""Server-side apply and Update ownership, on plain objects (no server)."""

from __future__ import annotations

import copy

import orjson
import pytest

from kubelite.api import apply as ssa
from kubelite.api import errors
from kubelite.api import managedfields as mf
from kubelite.api.resources import BUILTIN

DEPLOY = next(r for r in BUILTIN if r.kind == "Deployment" and r.group == "apps")
CONFIGMAP = next(r for r in BUILTIN if r.kind == "ConfigMap")


def config(replicas=1, image="nginx:1.25", **extra):
    container = {"name": "nginx", "image": image}
    container.update(extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [container]}}}}


def entries(obj):
    return {(e["manager"], e["operation"], e.get("subresource", "")): e
            for e in obj["metadata"].get("managedFields", [])}


def owned_paths(obj, manager, operation="Apply"):
    entry = entries(obj)[(manager, operation, "")]
    return {mf.path_string(p) for p in mf.paths(mf.decode(entry["fieldsV1"]))}


def created_by(manager, obj):
    new = copy.deepcopy(obj)
    ssa.record_update(DEPLOY, None, new, manager)
    return new


def test_manager_names():
    assert ssa.manager_from_user_agent("kubectl/v1.33.0 (linux/amd64) kubernetes/abc") == "kubectl"
    assert ssa.manager_from_user_agent("python-requests/2.31") == "python-requests"
    assert ssa.manager_from_user_agent("a\x07b/1") == "ab"
    assert ssa.manager_from_user_agent("x" * 300) == "x" * 128
    assert ssa.field_manager("kubectl-create", "kubectl/v1.33") == "kubectl-create"
    assert ssa.field_manager("", "") == "unknown"


def test_field_manager_validation():
    with pytest.raises(errors.ApiError) as e:
        ssa.validate_field_manager("m" * 129, "CreateOptions")
    assert e.value.code == 422
    assert e.value.message == ('CreateOptions.meta.k8s.io "" is invalid: '
                               'fieldManager: Too long: may not be more than 128 bytes')
    with pytest.raises(errors.ApiError) as e:
        ssa.validate_field_manager("", "PatchOptions", required_for_apply=True)
    assert e.value.message.endswith("fieldManager: Required value: is required for apply patch")
    ssa.validate_field_manager("m" * 128, "CreateOptions")


def test_create_records_an_update_entry():
    obj = created_by("kubectl-create", config())
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl-create" and entry["operation"] == "Update"
    assert entry["apiVersion"] == "apps/v1" and entry["fieldsType"] == "FieldsV1" and entry["time"].endswith("Z")
    fields = entry["fieldsV1"]
    assert "f:name" not in fields["f:metadata"] if "f:metadata" in fields else True
    assert fields["f:spec"]["f:replicas"] == {}


def test_update_moves_ownership_and_drops_empty_entries():
    obj = created_by("creator", config())
    new = copy.deepcopy(obj)
    new["spec"]["replicas"] = 5
    ssa.record_update(DEPLOY, obj, new, "scaler")
    assert ".spec.replicas" in owned_paths(new, "scaler", "Update")
    assert ".spec.replicas" not in owned_paths(new, "creator", "Update")
    # taking every remaining field of `creator` removes its entry
    newer = copy.deepcopy(new)
    newer["spec"] = {"replicas": 5, "paused": True}
    newer["metadata"].pop("labels", None)
    ssa.record_update(DEPLOY, new, newer, "scaler")
    assert ("creator", "Update", "") not in entries(newer)


def test_update_without_change_keeps_entries_and_times():
    obj = created_by("creator", config())
    again = copy.deepcopy(obj)
    del again["metadata"]["managedFields"]  # a client that does not send them
    ssa.record_update(DEPLOY, obj, again, "other")
    assert again["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_sent_managed_fields_replace_or_reset():
    obj = created_by("creator", config())
    cleared = copy.deepcopy(obj)
    cleared["metadata"]["managedFields"] = []
    ssa.record_update(DEPLOY, obj, cleared, "editor")
    assert "managedFields" not in cleared["metadata"]
    malformed = copy.deepcopy(obj)
    malformed["metadata"]["managedFields"] = [{"manager": "x", "operation": "Bogus"}]
    ssa.record_update(DEPLOY, obj, malformed, "editor")
    assert malformed["metadata"]["managedFields"] == obj["metadata"]["managedFields"]
    replaced = copy.deepcopy(obj)
    replaced["metadata"]["managedFields"] = [{"manager": "someone", "operation": "Update", "apiVersion": "apps/v1",
                                              "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}}]
    ssa.record_update(DEPLOY, obj, replaced, "editor")
    assert [e["manager"] for e in replaced["metadata"]["managedFields"]] == ["someone"]


def test_status_subresource_owns_only_status():
    obj = created_by("creator", config())
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 1}
    ssa.record_update(DEPLOY, obj, new, "kube-controller-manager", "status")
    entry = entries(new)[("kube-controller-manager", "Update", "status")]
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_apply_creates_and_is_idempotent():
    first = ssa.server_side_apply(DEPLOY, None, config(), "kubectl")
    (entry,) = first["metadata"]["managedFields"]
    assert entry["operation"] == "Apply" and entry["manager"] == "kubectl" and "time" in entry
    assert first["spec"]["replicas"] == 1
    second = ssa.server_side_apply(DEPLOY, first, config(), "kubectl")
    assert second == first


def test_conflict_message_and_force():
    live = created_by("kubectl-client-side-apply", config())
    with pytest.raises(errors.ApiError) as e:
        ssa.server_side_apply(DEPLOY, live, config(replicas=3), "other")
    err = e.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                           'using apps/v1: .spec.replicas')
    assert err.details == {"causes": [{"reason": "FieldManagerConflict",
                                       "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                                       "field": ".spec.replicas"}]}
    forced = ssa.server_side_apply(DEPLOY, live, config(replicas=3), "other", force=True)
    assert forced["spec"]["replicas"] == 3
    assert ".spec.replicas" in owned_paths(forced, "other")
    assert ".spec.replicas" not in owned_paths(forced, "kubectl-client-side-apply", "Update")


def test_several_conflicts_are_listed_per_manager():
    live = ssa.server_side_apply(DEPLOY, None, config(), "a")
    with pytest.raises(errors.ApiError) as e:
        ssa.server_side_apply(DEPLOY, live, config(replicas=2, image="nginx:2"), "b")
    assert e.value.message == ('Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n'
                               '- .spec.template.spec.containers[name="nginx"].image')


def test_same_value_is_shared_not_a_conflict():
    live = ssa.server_side_apply(DEPLOY, None, config(), "a")
    both = ssa.server_side_apply(DEPLOY, live, config(), "b")
    assert ".spec.replicas" in owned_paths(both, "a") and ".spec.replicas" in owned_paths(both, "b")


def test_fields_no_longer_applied_are_removed_unless_owned_elsewhere():
    live = ssa.server_side_apply(DEPLOY, None, config(args=["x"], command=["sleep"]), "kubectl")
    shared = ssa.server_side_apply(DEPLOY, live, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "nginx", "command": ["sleep"]}]}}}}, "other")
    dropped = ssa.server_side_apply(DEPLOY, shared, config(), "kubectl")
    container = dropped["spec"]["template"]["spec"]["containers"][0]
    assert "args" not in container  # only kubectl applied it
    assert container["command"] == ["sleep"]  # "other" still applies it


def test_list_types():
    live = ssa.server_side_apply(DEPLOY, None, config(args=["a", "b"]), "a")
    # map list keyed by name: b's container joins a's; atomic list: b's args replace a's (forced)
    cfg = config(args=["z"])
    cfg["spec"]["template"]["spec"]["containers"] = [{"name": "sidecar", "image": "busybox"},
                                                     {"name": "nginx", "args": ["z"]}]
    del cfg["spec"]["replicas"]
    out = ssa.server_side_apply(DEPLOY, live, cfg, "b", force=True)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar", "nginx"]
    assert containers[1] == {"name": "nginx", "image": "nginx:1.25", "args": ["z"]}
    # set list: finalizers from two managers merge as a set
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["x/one"]}}
    one = ssa.server_side_apply(CONFIGMAP, None, cm, "m1")
    two = ssa.server_side_apply(CONFIGMAP, one, {**cm, "metadata": {"name": "c", "finalizers": ["x/two"]}}, "m2")
    assert two["metadata"]["finalizers"] == ["x/one", "x/two"]
    three = ssa.server_side_apply(CONFIGMAP, two, {**cm, "metadata": {"name": "c", "finalizers": []}}, "m1")
    assert three["metadata"]["finalizers"] == ["x/two"]


def test_apply_checks():
    live = created_by("c", config())
    bad_kind = config()
    del bad_kind["kind"]
    with pytest.raises(errors.ApiError) as e:
        ssa.server_side_apply(DEPLOY, live, bad_kind, "m")
    assert (e.value.code, e.value.message) == (400, "invalid object type: apps/v1, Kind=")
    with_mf = config()
    with_mf["metadata"]["managedFields"] = [{}]
    with pytest.raises(errors.ApiError) as e:
        ssa.server_side_apply(DEPLOY, live, with_mf, "m")
    assert (e.value.code, e.value.message) == (400, "metadata.managedFields must be nil")
    dup = config()
    dup["spec"]["template"]["spec"]["containers"].append({"name": "nginx", "image": "x"})
    with pytest.raises(errors.ApiError) as e:
        ssa.server_side_apply(DEPLOY, live, dup, "m")
    assert e.value.code == 500 and "duplicate entries for key [name=\"nginx\"]" in e.value.message


def test_kubectl_upgrades_from_client_side_apply():
    live = created_by("kubectl-client-side-apply", config())
    live["metadata"]["annotations"] = {
        ssa.LAST_APPLIED: orjson.dumps(config()).decode() + "\n"}
    # kubectl's server-side apply takes fields client-side apply set (values unchanged since) without conflict
    out = ssa.server_side_apply(DEPLOY, live, config(replicas=4), "kubectl")
    assert out["spec"]["replicas"] == 4
    assert orjson.loads(out["metadata"]["annotations"][ssa.LAST_APPLIED])["spec"]["replicas"] == 4
    with pytest.raises(errors.ApiError):
        ssa.server_side_apply(DEPLOY, live, config(replicas=4), "someone-else")


def test_update_managers_are_capped_at_ten():
    obj = created_by("m0", config())
    for i in range(1, 13):
        new = copy.deepcopy(obj)
        new["metadata"].setdefault("labels", {})[f"l{i}"] = "x"
        ssa.record_update(DEPLOY, obj, new, f"m{i}")
        obj = new
    updaters = [e for e in obj["metadata"]["managedFields"] if e["operation"] == "Update"]
    assert len(updaters) == 10
    assert any(e["manager"] == "ancient-changes" for e in updaters)
