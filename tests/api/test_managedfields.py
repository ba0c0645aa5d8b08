"""Field sets: FieldsV1 encoding and decoding, the fields of an object, comparisons, list types."""

from __future__ import annotations

import orjson
import pytest

from kubelite.api import managedfields as mf

DEPLOYMENT = mf.type_named("io.k8s.api.apps.v1.Deployment")
POD = mf.type_named("io.k8s.api.core.v1.Pod")


def deployment(**spec_extra):
    container = {"name": "nginx", "image": "nginx:1.25", "args": ["a", "b"],
                 "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}}}
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a/b", "c/d"]}, "spec": spec}


def test_field_set_of_a_deployment_uses_list_and_map_types():
    fields = mf.encode(mf.field_set(deployment(), DEPLOYMENT))
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    # map-list items are members with their fields below; keys sorted, protocol defaulted like upstream
    assert list(container) == [".", "f:args", "f:env", "f:image", "f:name", "f:ports"]
    assert container["f:args"] == {}  # atomic list: one leaf
    assert container["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}
    assert container["f:env"] == {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}}
    # an atomic struct (LabelSelector) is one leaf; map entries are members
    assert fields["f:spec"]["f:selector"] == {}
    assert fields["f:metadata"]["f:labels"] == {"f:app": {}}
    # a set list: one `v:` member per value
    assert fields["f:metadata"]["f:finalizers"] == {'v:"a/b"': {}, 'v:"c/d"': {}}


def test_encode_decode_round_trip_and_order():
    fields = mf.field_set(deployment(), DEPLOYMENT)
    wire = mf.encode(fields)
    text = orjson.dumps(wire)
    back = mf.decode(orjson.loads(text))
    assert mf.encode(back) == wire
    assert orjson.dumps(mf.encode(back)) == text
    # `f:` before `k:` before `v:` before `i:`; "." first in a member with children
    mixed = mf.decode({"i:1": {}, "v:3": {}, 'k:{"b":1,"a":"x"}': {".": {}, "f:z": {}}, "f:b": {}, "f:a": {}})
    encoded = mf.encode(mixed)
    assert list(encoded) == ["f:a", "f:b", 'k:{"a":"x","b":1}', "v:3", "i:1"]
    assert list(encoded['k:{"a":"x","b":1}']) == [".", "f:z"]


def test_decode_rejects_malformed_and_drops_unknown_kinds():
    with pytest.raises(mf.FieldSetError):
        mf.decode({"nocolon": {}})
    with pytest.raises(mf.FieldSetError):
        mf.decode({"k:{notjson": {}})
    with pytest.raises(mf.FieldSetError):
        mf.decode({"f:a": "not an object"})
    assert mf.decode({"x:future": {}, "f:a": {}}) == {"f:a": {}}


def test_set_algebra():
    a = mf.decode({"f:spec": {"f:replicas": {}, "f:paused": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
    b = mf.decode({"f:spec": {"f:replicas": {}}, "f:metadata": {"f:labels": {"f:x": {}}}})
    assert mf.encode(mf.difference(a, b)) == {"f:metadata": {"f:labels": {}}, "f:spec": {"f:paused": {}}}
    assert mf.encode(mf.intersection(a, b)) == {"f:metadata": {"f:labels": {"f:x": {}}},
                                                 "f:spec": {"f:replicas": {}}}
    assert mf.union(b, a) == mf.union(a, b) or mf.encode(mf.union(b, a)) == mf.encode(mf.union(a, b))
    assert mf.difference(a, a) == {}
    assert [mf.path_string(p) for p in mf.paths(a)] == [
        ".metadata.labels", ".metadata.labels.x", ".spec.paused", ".spec.replicas"]


def test_path_strings():
    s = mf.field_set(deployment(), DEPLOYMENT)
    printed = {mf.path_string(p) for p in mf.paths(s)}
    assert '.spec.template.spec.containers[name="nginx"].image' in printed
    assert '.spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"]' in printed
    assert '.metadata.finalizers[="a/b"]' in printed


def test_compare_marks_added_modified_removed():
    old = deployment()
    new = deployment(replicas=3, paused=True)
    new["spec"]["template"]["spec"]["containers"][0]["args"] = ["c"]
    del new["metadata"]["labels"]
    diff = mf.compare(old, new, DEPLOYMENT)
    assert mf.encode(diff.added) == {"f:spec": {"f:paused": {}}}
    assert mf.encode(diff.modified) == {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        'k:{"name":"nginx"}': {"f:args": {}}}}}}}
    assert mf.encode(diff.removed) == {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}


def test_compare_of_a_create_has_no_marker_on_by_value_structs():
    diff = mf.compare(None, deployment(strategy={"rollingUpdate": {"maxSurge": 1}}), DEPLOYMENT)
    added = mf.encode(diff.added)
    assert "." not in added["f:spec"] and "." not in added["f:spec"]["f:template"]
    assert "." not in added["f:spec"]["f:strategy"]
    assert added["f:spec"]["f:strategy"]["f:rollingUpdate"] == {".": {}, "f:maxSurge": {}}
    # required containers list: present (null) in the typed zero object
    assert "." not in added["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert added["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    # null and absent are one value in a typed object: kubectl's `creationTimestamp: null` is no change
    obj = deployment()
    obj["spec"]["template"]["metadata"]["creationTimestamp"] = None
    added = mf.encode(mf.compare(None, obj, DEPLOYMENT).added)
    assert "f:creationTimestamp" not in added["f:spec"]["f:template"]["f:metadata"]


def test_duplicate_keys_and_missing_keys_are_errors():
    pod = {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}
    with pytest.raises(mf.FieldSetError, match="duplicate entries"):
        mf.field_set(pod, POD)
    with pytest.raises(mf.FieldSetError, match='omits key field "name"'):
        mf.field_set({"spec": {"containers": [{"image": "x"}]}}, POD)


def test_remove_items():
    obj = deployment()
    s = mf.decode({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        'k:{"name":"nginx"}': {"f:env": {'k:{"name":"A"}': {}}}}}}}, "f:metadata": {"f:finalizers": {'v:"a/b"': {}}}})
    out = mf.remove_items(obj, s, DEPLOYMENT)
    assert "replicas" not in out["spec"]
    assert out["spec"]["template"]["spec"]["containers"][0]["env"] == []
    assert out["metadata"]["finalizers"] == ["c/d"]
    assert obj["spec"]["replicas"] == 2  # the input is left alone


def test_entries_round_trip_and_validation():
    raw = [{"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
           {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1",
            "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}]
    assert mf.encode_entries(mf.decode_entries(raw)) == raw
    for bad in ({"operation": "Patch"}, {"apiVersion": ""}, {"fieldsType": "FieldsV2"}):
        with pytest.raises(mf.FieldSetError):
            mf.decode_entries([{**raw[0], **bad}])
    assert mf.is_reset([]) and mf.is_reset([{}]) and not mf.is_reset(None) and not mf.is_reset(raw)


def test_strip_meta():
    s = mf.decode({"f:apiVersion": {}, "f:kind": {}, "f:metadata": {
        "f:name": {}, "f:namespace": {}, "f:resourceVersion": {}, "f:labels": {"f:a": {}}}})
    assert mf.encode(mf.strip_meta(s)) == {"f:metadata": {"f:labels": {"f:a": {}}}}
