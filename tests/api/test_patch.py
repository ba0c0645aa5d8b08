"""Tests of the three PATCH algorithms: JSON patch (RFC 6902), merge patch (RFC 7386), strategic merge patch."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess

import pytest

from kubelite.api.errors import ApiError
from kubelite.api.patch import JsonPatchFailure, json_patch, merge_patch, strategic_merge_patch

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"

INVALID = "the server rejected our request due to an error in our request"

CM = {
    "apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "c", "labels": {"a/b": "1", "m~n": "2"}, "finalizers": ["f1", "f2", "f3"]},
    "data": {"k": "v", "n": "1"},
}


def patched(ops: list) -> dict:
    before = copy.deepcopy(CM)
    out = json_patch(CM, ops)
    assert CM == before, "the input document must not be modified"
    return out


def unprocessable(ops: list, why: str) -> None:
    with pytest.raises(ApiError) as info:
        json_patch(CM, ops)
    err = info.value
    assert (err.code, err.reason, err.message) == (422, "Invalid", INVALID)
    assert isinstance(err.__cause__, JsonPatchFailure)
    assert why in str(err.__cause__)


# ---------------------------------------------------------------------------------------------------
# JSON patch: every expectation below was checked against `kubectl patch --local --type json` (v1.33),
# which applies the same evanphx/json-patch v4 as the API server.


def test_add_object_member_and_array_positions():
    assert patched([{"op": "add", "path": "/data/new", "value": "x"}])["data"] == {"k": "v", "n": "1", "new": "x"}
    fins = lambda ops: patched(ops)["metadata"]["finalizers"]  # noqa: E731
    assert fins([{"op": "add", "path": "/metadata/finalizers/-", "value": "f4"}]) == ["f1", "f2", "f3", "f4"]
    assert fins([{"op": "add", "path": "/metadata/finalizers/0", "value": "f0"}]) == ["f0", "f1", "f2", "f3"]
    assert fins([{"op": "add", "path": "/metadata/finalizers/3", "value": "e"}]) == ["f1", "f2", "f3", "e"]
    assert fins([{"op": "add", "path": "/metadata/finalizers/01", "value": "z"}]) == ["f1", "z", "f2", "f3"]
    # v4 counts negative indices from the end (of the array one longer)
    assert fins([{"op": "add", "path": "/metadata/finalizers/-1", "value": "n"}]) == ["f1", "f2", "f3", "n"]
    assert fins([{"op": "add", "path": "/metadata/finalizers/-4", "value": "n"}]) == ["n", "f1", "f2", "f3"]


def test_add_replaces_existing_member_and_defaults_value_to_null():
    assert patched([{"op": "add", "path": "/data/k", "value": {"x": [1]}}])["data"]["k"] == {"x": [1]}
    assert patched([{"op": "add", "path": "/data"}])["data"] is None


def test_pointer_escapes():
    out = patched([{"op": "remove", "path": "/metadata/labels/a~1b"},
                   {"op": "add", "path": "/metadata/labels/x~01", "value": "y"}])
    assert out["metadata"]["labels"] == {"m~n": "2", "x~1": "y"}
    assert patched([{"op": "remove", "path": "/metadata/labels/m~0n"}])["metadata"]["labels"] == {"a/b": "1"}


def test_add_errors():
    unprocessable([{"op": "add", "path": "/metadata/finalizers/4", "value": "x"}], "invalid index")
    unprocessable([{"op": "add", "path": "/metadata/finalizers/-5", "value": "x"}], "invalid index")
    unprocessable([{"op": "add", "path": "/metadata/finalizers/x", "value": "x"}], "invalid syntax")
    unprocessable([{"op": "add", "path": "/nope/deeper", "value": 1}], "missing path")
    unprocessable([{"op": "add", "path": "/data/k/deeper", "value": 1}], "missing path")
    unprocessable([{"op": "add", "path": "", "value": {}}], "missing path")
    unprocessable([{"op": "add", "value": 1}], "missing path field")
    unprocessable([{"op": "add", "path": 5, "value": 1}], "cannot unmarshal number")


def test_remove():
    assert patched([{"op": "remove", "path": "/data/k"}])["data"] == {"n": "1"}
    assert patched([{"op": "remove", "path": "/metadata/finalizers/1"}])["metadata"]["finalizers"] == ["f1", "f3"]
    assert patched([{"op": "remove", "path": "/metadata/finalizers/-1"}])["metadata"]["finalizers"] == ["f1", "f2"]
    unprocessable([{"op": "remove", "path": "/data/missing"}], "nonexistent key")
    unprocessable([{"op": "remove", "path": "/metadata/finalizers/3"}], "invalid index")
    unprocessable([{"op": "remove", "path": "/metadata/finalizers/-"}], "invalid syntax")


def test_replace():
    assert patched([{"op": "replace", "path": "/data/k", "value": "w"}])["data"]["k"] == "w"
    assert patched([{"op": "replace", "path": "/metadata/finalizers/-3", "value": "x"}])["metadata"][
        "finalizers"] == ["x", "f2", "f3"]
    # json-patch v4 (what the API server uses) adds a missing object member instead of failing
    assert patched([{"op": "replace", "path": "/data/missing", "value": "a"}])["data"]["missing"] == "a"
    unprocessable([{"op": "replace", "path": "/metadata/finalizers/5", "value": "x"}], "invalid index")


def test_replace_whole_document():
    new = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert patched([{"op": "replace", "path": "", "value": new}]) == new
    assert patched([{"op": "replace", "path": "", "value": "scalar"}]) == CM  # ignored, as v4 does


def test_move():
    assert patched([{"op": "move", "from": "/data/k", "path": "/data/k2"}])["data"] == {"n": "1", "k2": "v"}
    assert patched([{"op": "move", "from": "/metadata/finalizers/0", "path": "/metadata/finalizers/-"}])[
        "metadata"]["finalizers"] == ["f2", "f3", "f1"]
    unprocessable([{"op": "move", "from": "/data/missing", "path": "/data/k2"}], "nonexistent key")
    unprocessable([{"op": "move", "from": "/data", "path": "/data/inner"}], "missing path")
    unprocessable([{"op": "move", "path": "/data/x"}], "missing from field")


def test_copy():
    out = patched([{"op": "copy", "from": "/metadata/finalizers", "path": "/data/list"},
                   {"op": "add", "path": "/data/list/-", "value": "more"}])
    assert out["data"]["list"] == ["f1", "f2", "f3", "more"]
    assert out["metadata"]["finalizers"] == ["f1", "f2", "f3"], "a copy is deep"
    assert patched([{"op": "copy", "from": "/data/k", "path": "/metadata/labels/c"}])["metadata"]["labels"][
        "c"] == "v"
    # v4 copies a missing object member as null
    assert patched([{"op": "copy", "from": "/data/missing", "path": "/metadata/labels/c"}])["metadata"][
        "labels"]["c"] is None
    unprocessable([{"op": "copy", "from": "/metadata/finalizers/9", "path": "/data/x"}], "invalid index")


def test_copy_size_limit():
    big = dict(CM, data={"blob": "x" * (1024 * 1024)})
    ops = [{"op": "copy", "from": "/data/blob", "path": f"/data/c{i}"} for i in range(4)]
    with pytest.raises(ApiError) as info:
        json_patch(big, ops)
    assert info.value.code == 422
    assert "accumulated size increase" in str(info.value.__cause__)
    assert len(json_patch(big, ops[:2])["data"]) == 3


def test_test_op():
    out = patched([{"op": "test", "path": "/data/k", "value": "v"}, {"op": "add", "path": "/data/ok", "value": "1"}])
    assert out["data"]["ok"] == "1"
    patched([{"op": "test", "path": "/metadata/finalizers", "value": ["f1", "f2", "f3"]}])
    patched([{"op": "test", "path": "/metadata/labels", "value": {"m~n": "2", "a/b": "1"}}])
    patched([{"op": "test", "path": "/data/missing", "value": None}])
    patched([{"op": "test", "path": "", "value": CM}])
    unprocessable([{"op": "test", "path": "/data/k", "value": "nope"}], "testing value /data/k failed")
    unprocessable([{"op": "test", "path": "/data/missing", "value": "x"}], "test failed")
    unprocessable([{"op": "test", "path": "/data/n", "value": 1}], "test failed")  # "1" is not 1
    unprocessable([{"op": "test", "path": "/metadata/labels", "value": {"m~n": "2"}}], "test failed")
    unprocessable([{"op": "test", "path": "/data/k"}], "test failed")


def test_failed_op_leaves_document_untouched():
    unprocessable([{"op": "add", "path": "/data/a", "value": 1}, {"op": "test", "path": "/data/k", "value": 0}],
                  "test failed")
    assert "a" not in CM["data"]


def test_unknown_or_missing_op():
    unprocessable([{"op": "frob", "path": "/data/k"}], "Unexpected kind: frob")
    unprocessable([{"path": "/data/k"}], "Unexpected kind: unknown")
    unprocessable([None], "Unexpected kind: unknown")


def test_malformed_patch_documents_are_bad_requests():
    for ops, message in [
        ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        ("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
        (["add"], "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
    ]:
        with pytest.raises(ApiError) as info:
            json_patch(CM, ops)
        assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)
    assert json_patch(CM, None) == CM
    assert json_patch(CM, []) == CM


def test_operation_limit():
    ops = [{"op": "test", "path": "/data/k", "value": "v"}] * 10000
    assert json_patch(CM, ops) == CM
    with pytest.raises(ApiError) as info:
        json_patch(CM, ops + ops[:1])
    err = info.value
    assert (err.code, err.reason) == (413, "RequestEntityTooLarge")
    assert err.message == ("Request entity too large: The allowed maximum operations in a JSON patch is 10000, "
                           "got 10001")


def test_result_must_stay_an_object():
    with pytest.raises(ApiError) as info:
        json_patch(CM, [{"op": "replace", "path": "", "value": [1]}])
    assert (info.value.code, info.value.reason) == (422, "Invalid")
    assert info.value.message.startswith(' "" is invalid: patch: Invalid value: "[1]"')


# ---------------------------------------------------------------------------------------------------
# Merge patch (RFC 7386 test vectors from the RFC's appendix A, then upstream's v4 specifics)

RFC7386_VECTORS = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("doc", "patch", "expected"), RFC7386_VECTORS)
def test_merge_patch_rfc_vectors(doc, patch, expected):
    before = copy.deepcopy(doc)
    assert merge_patch(doc, patch) == expected
    assert doc == before


def test_merge_patch_kubernetes_shapes():
    # checked against kubectl patch --local --type merge (v1.33)
    assert merge_patch(CM, {"data": {"k": None, "z": "1"}})["data"] == {"n": "1", "z": "1"}
    assert "labels" not in merge_patch(CM, {"metadata": {"labels": None}})["metadata"]
    # v4 keeps null array elements but prunes null members of objects inside new values
    assert merge_patch(CM, {"metadata": {"finalizers": ["a", None]}})["metadata"]["finalizers"] == ["a", None]
    refs = merge_patch(CM, {"metadata": {"ownerReferences": [{"uid": "u", "controller": None}]}})
    assert refs["metadata"]["ownerReferences"] == [{"uid": "u"}]
    assert merge_patch(CM, {"data": {"k": {"nested": None, "x": 1}}})["data"]["k"] == {"x": 1}
    # ...and keeps nulls when an object is replaced by a non-object
    assert merge_patch(CM, {"metadata": {"labels": ["a", None]}})["metadata"]["labels"] == ["a", None]
    assert merge_patch(CM, {}) == CM


def test_merge_patch_bad_documents():
    for patch in (None, "x", 3, True):
        with pytest.raises(ApiError) as info:
            merge_patch(CM, patch)
        assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", "Invalid JSON Patch")
    with pytest.raises(ApiError) as info:
        merge_patch(CM, [{"a": None}])
    assert (info.value.code, info.value.reason) == (422, "Invalid")


# ---------------------------------------------------------------------------------------------------
# Strategic merge patch: cases whose expected results (or errors) are what `kubectl patch --local
# --type strategic` (v1.33.1, apimachinery's StrategicMergePatch) produced for the same inputs.
# Each case: (id, OpenAPI definition, live object, patch, expected object or {"code", "message"}).

SMP_CASES = [
    ('wire-capture-env-A',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'nginx',
                                                     'image': 'nginx:1.14.2',
                                                     'env': [{'name': 'A', 'value': '1'}],
                                                     'ports': [{'containerPort': 80}]}]}}}},
     {'metadata': {'annotations': {'kubectl.kubernetes.io/last-applied-configuration': '{}\n'}},
      'spec': {'replicas': 3,
               'template': {'spec': {'$setElementOrder/containers': [{'name': 'nginx'}, {'name': 'sidecar'}],
                                     'containers': [{'$setElementOrder/env': [{'name': 'B'}],
                                                     '$setElementOrder/ports': [{'containerPort': 80},
                                                                                {'containerPort': 443}],
                                                     'env': [{'$patch': 'delete', 'name': 'A'}],
                                                     'image': 'nginx:1.16.1',
                                                     'name': 'nginx',
                                                     'ports': [{'containerPort': 443}]},
                                                    {'command': ['sleep', '3600'],
                                                     'image': 'busybox',
                                                     'name': 'sidecar'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'annotations': {'kubectl.kubernetes.io/last-applied-configuration': '{}\n'},
                   'labels': {'app': 'nginx'},
                   'name': 'nginx-deployment',
                   'namespace': 'default'},
      'spec': {'replicas': 3,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'env': [],
                                                     'image': 'nginx:1.16.1',
                                                     'name': 'nginx',
                                                     'ports': [{'containerPort': 80},
                                                               {'containerPort': 443}]},
                                                    {'command': ['sleep', '3600'],
                                                     'image': 'busybox',
                                                     'name': 'sidecar'}]}}}}),
    ('wire-capture-env-A-B',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'nginx',
                                                     'image': 'nginx:1.14.2',
                                                     'env': [{'name': 'A', 'value': '1'},
                                                             {'name': 'B', 'value': '2'}],
                                                     'ports': [{'containerPort': 80}]}]}}}},
     {'metadata': {'annotations': {'kubectl.kubernetes.io/last-applied-configuration': '{}\n'}},
      'spec': {'replicas': 3,
               'template': {'spec': {'$setElementOrder/containers': [{'name': 'nginx'}, {'name': 'sidecar'}],
                                     'containers': [{'$setElementOrder/env': [{'name': 'B'}],
                                                     '$setElementOrder/ports': [{'containerPort': 80},
                                                                                {'containerPort': 443}],
                                                     'env': [{'$patch': 'delete', 'name': 'A'}],
                                                     'image': 'nginx:1.16.1',
                                                     'name': 'nginx',
                                                     'ports': [{'containerPort': 443}]},
                                                    {'command': ['sleep', '3600'],
                                                     'image': 'busybox',
                                                     'name': 'sidecar'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'annotations': {'kubectl.kubernetes.io/last-applied-configuration': '{}\n'},
                   'labels': {'app': 'nginx'},
                   'name': 'nginx-deployment',
                   'namespace': 'default'},
      'spec': {'replicas': 3,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'env': [{'name': 'B', 'value': '2'}],
                                                     'image': 'nginx:1.16.1',
                                                     'name': 'nginx',
                                                     'ports': [{'containerPort': 80},
                                                               {'containerPort': 443}]},
                                                    {'command': ['sleep', '3600'],
                                                     'image': 'busybox',
                                                     'name': 'sidecar'}]}}}}),
    ('retainkeys-recreate',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
               'strategy': {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': 1, 'maxUnavailable': 0}}}},
     {'spec': {'strategy': {'$retainKeys': ['type'], 'rollingUpdate': None, 'type': 'Recreate'}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'strategy': {'type': 'Recreate'},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}}}),
    ('retainkeys-clears-unlisted',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
               'strategy': {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': 1, 'maxUnavailable': 0}}}},
     {'spec': {'strategy': {'$retainKeys': ['type'], 'type': 'Recreate'}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'strategy': {'type': 'Recreate'},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}}}),
    ('retainkeys-volume',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}],
               'volumes': [{'name': 'data', 'emptyDir': {}}, {'name': 'cfg', 'configMap': {'name': 'c'}}]}},
     {'spec': {'$setElementOrder/volumes': [{'name': 'data'}, {'name': 'cfg'}],
               'volumes': [{'$retainKeys': ['hostPath', 'name'],
                            'emptyDir': None,
                            'hostPath': {'path': '/tmp'},
                            'name': 'data'}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}],
               'volumes': [{'hostPath': {'path': '/tmp'}, 'name': 'data'},
                           {'configMap': {'name': 'c'}, 'name': 'cfg'}]}}),
    ('retainkeys-patch-key-not-listed',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
               'strategy': {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': 1, 'maxUnavailable': 0}}}},
     {'spec': {'strategy': {'$retainKeys': ['rollingUpdate'], 'type': 'Recreate'}}},
     {'code': 400, 'message': 'invalid patch format of retainKeys'}),
    ('retainkeys-not-a-list',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
               'strategy': {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': 1, 'maxUnavailable': 0}}}},
     {'spec': {'strategy': {'$retainKeys': 'type', 'type': 'Recreate'}}},
     {'code': 400, 'message': 'invalid patch format of retainKeys'}),
    ('delete-from-primitive-list-finalizers',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'finalizers': ['a/x', 'b/y', 'c/z']},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'$deleteFromPrimitiveList/finalizers': ['b/y', 'missing']}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'finalizers': ['a/x', 'c/z'], 'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('delete-from-primitive-list-absent-field',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'$deleteFromPrimitiveList/finalizers': ['b/y']}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('delete-from-primitive-list-with-order',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'finalizers': ['a', 'b', 'c']},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'$deleteFromPrimitiveList/finalizers': ['b'],
                   '$setElementOrder/finalizers': ['c', 'd', 'a'],
                   'finalizers': ['d']}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'finalizers': ['c', 'd', 'a'], 'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('delete-from-primitive-list-bad-key',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'finalizers': ['a']},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'$deleteFromPrimitiveListfinalizers': ['a']}},
     {'code': 400, 'message': 'invalid patch format of primitive list'}),
    ('primitive-merge-list-new-first',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'finalizers': ['a', 'b']},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'finalizers': ['c', 'a']}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'finalizers': ['c', 'a', 'b'], 'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('primitive-merge-list-set-order',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'finalizers': ['a', 'b', 'x']},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'$setElementOrder/finalizers': ['b', 'c', 'a'], 'finalizers': ['c']}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'finalizers': ['b', 'c', 'a', 'x'], 'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('set-element-order-reorders',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'},
                                                    {'name': 'c', 'image': 'c'}]}}}},
     {'spec': {'template': {'spec': {'$setElementOrder/containers': [{'name': 'c'},
                                                                     {'name': 'a'},
                                                                     {'name': 'b'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'c', 'name': 'c'},
                                                    {'image': 'a', 'name': 'a'},
                                                    {'image': 'b', 'name': 'b'}]}}}}),
    ('set-element-order-new-and-server-only',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'},
                                                    {'name': 'x', 'image': 'x'}]}}}},
     {'spec': {'template': {'spec': {'$setElementOrder/containers': [{'name': 'b'},
                                                                     {'name': 'new'},
                                                                     {'name': 'a'}],
                                     'containers': [{'name': 'new', 'image': 'n'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'b', 'name': 'b'},
                                                    {'image': 'n', 'name': 'new'},
                                                    {'image': 'a', 'name': 'a'},
                                                    {'image': 'x', 'name': 'x'}]}}}}),
    ('set-element-order-mismatch',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'}]}}}},
     {'spec': {'template': {'spec': {'$setElementOrder/containers': [{'name': 'a'}],
                                     'containers': [{'name': 'b', 'image': 'z'}]}}}},
     {'code': 500,
      'message': 'The order in patch list:\n'
                 '[map[image:z name:b]]\n'
                 " doesn't match $setElementOrder list:\n"
                 '[map[name:a]]\n'}),
    ('set-element-order-bad-key',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}}}},
     {'spec': {'template': {'spec': {'$setElementOrdercontainers': [{'name': 'a'}]}}}},
     {'code': 400, 'message': 'invalid patch format of setElementOrder list'}),
    ('merge-list-new-element-first',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'name': 'c', 'image': 'c'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'c', 'name': 'c'},
                                                    {'image': 'a', 'name': 'a'},
                                                    {'image': 'b', 'name': 'b'}]}}}}),
    ('merge-list-patch-order-wins',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'},
                                                    {'name': 'c', 'image': 'c'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'name': 'c', 'image': 'c2'},
                                                    {'name': 'a', 'image': 'a2'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'b', 'name': 'b'},
                                                    {'image': 'c2', 'name': 'c'},
                                                    {'image': 'a2', 'name': 'a'}]}}}}),
    ('patch-delete-list-element',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'},
                                                    {'name': 'c', 'image': 'c'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'$patch': 'delete', 'name': 'b'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'a', 'name': 'a'},
                                                    {'image': 'c', 'name': 'c'}]}}}}),
    ('patch-delete-missing-merge-key',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'$patch': 'delete', 'image': 'a'}]}}}},
     {'code': 500, 'message': 'map: map[$patch:delete image:a] does not contain declared merge key: name'}),
    ('patch-replace-list',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'},
                                                    {'name': 'b', 'image': 'b'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'name': 'only', 'image': 'o'},
                                                    {'$patch': 'replace'}]}}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'o', 'name': 'only'}]}}}}),
    ('patch-merge-list-refused',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'name': 'b', 'image': 'b'}, {'$patch': 'merge'}]}}}},
     {'code': 500, 'message': 'merging lists cannot yet be specified in the patch'}),
    ('patch-unknown-list-directive',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'$patch': 'frobnicate', 'name': 'a'}]}}}},
     {'code': 500, 'message': 'unknown patch type: frobnicate in map: map[$patch:frobnicate name:a]'}),
    ('patch-replace-map',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}], 'nodeSelector': {'zone': 'a', 'disk': 'hdd'}}},
     {'spec': {'nodeSelector': {'$patch': 'replace', 'disk': 'ssd'}}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}], 'nodeSelector': {'disk': 'ssd'}}}),
    ('patch-replace-struct',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}],
               'securityContext': {'runAsUser': 0, 'fsGroup': 2}}},
     {'spec': {'securityContext': {'$patch': 'replace', 'runAsNonRoot': True}}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}], 'securityContext': {'runAsNonRoot': True}}}),
    ('patch-delete-map',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'labels': {'a': '1'}},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'labels': {'$patch': 'delete'}}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'labels': {}, 'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('patch-merge-map-refused',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'labels': {'a': '1'}},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'labels': {'$patch': 'merge', 'b': '2'}}},
     {'code': 500, 'message': 'unknown patch type: merge in map: map[$patch:merge b:2]'}),
    ('null-deletes-map-key',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'labels': {'a': '1', 'b': '2'}},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'labels': {'a': None, 'c': '3', 'zz': None}}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'labels': {'b': '2', 'c': '3'}, 'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('null-deletes-struct',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
               'strategy': {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': 1, 'maxUnavailable': 0}}}},
     {'spec': {'strategy': {'rollingUpdate': None}}},
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'labels': {'app': 'nginx'}, 'name': 'nginx-deployment', 'namespace': 'default'},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'strategy': {'type': 'RollingUpdate'},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}}}),
    ('new-value-drops-nulls',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'spec': {'securityContext': {'runAsUser': 1,
                                   'fsGroup': None,
                                   'sysctls': [{'name': 'a', 'value': 'b'}]}}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}],
               'securityContext': {'runAsUser': 1, 'sysctls': [{'name': 'a', 'value': 'b'}]}}}),
    ('replace-list-args-command',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a', 'args': ['x', 'y'], 'command': ['sh']}]}},
     {'spec': {'containers': [{'name': 'a', 'args': ['z'], 'command': ['bash', '-c']}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'args': ['z'], 'command': ['bash', '-c'], 'image': 'a', 'name': 'a'}]}}),
    ('replace-list-tolerations',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}],
               'tolerations': [{'key': 'k', 'operator': 'Exists'}]}},
     {'spec': {'tolerations': [{'key': 'other', 'operator': 'Exists', 'effect': 'NoSchedule'}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}],
               'tolerations': [{'effect': 'NoSchedule', 'key': 'other', 'operator': 'Exists'}]}}),
    ('nested-env-volumemounts',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a',
                               'image': 'a',
                               'env': [{'name': 'A', 'value': '1'}, {'name': 'B', 'value': '2'}],
                               'volumeMounts': [{'name': 'v', 'mountPath': '/a'}]}]}},
     {'spec': {'containers': [{'name': 'a',
                               'env': [{'name': 'B', 'value': '3'}, {'name': 'C', 'value': '4'}],
                               'volumeMounts': [{'name': 'w', 'mountPath': '/b'},
                                                {'mountPath': '/a', 'readOnly': True}]}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'env': [{'name': 'A', 'value': '1'},
                                       {'name': 'B', 'value': '3'},
                                       {'name': 'C', 'value': '4'}],
                               'image': 'a',
                               'name': 'a',
                               'volumeMounts': [{'mountPath': '/b', 'name': 'w'},
                                                {'mountPath': '/a', 'name': 'v', 'readOnly': True}]}]}}),
    ('env-value-replaces-valuefrom',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a',
                               'image': 'a',
                               'env': [{'name': 'A',
                                        'valueFrom': {'fieldRef': {'fieldPath': 'metadata.name'}}}]}]}},
     {'spec': {'containers': [{'name': 'a', 'env': [{'name': 'A', 'value': 'x', 'valueFrom': None}]}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'env': [{'name': 'A', 'value': 'x'}], 'image': 'a', 'name': 'a'}]}}),
    ('container-ports-keyed-on-containerPort',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a',
                               'image': 'a',
                               'ports': [{'containerPort': 53, 'protocol': 'TCP'}, {'containerPort': 80}]}]}},
     {'spec': {'containers': [{'name': 'a',
                               'ports': [{'containerPort': 53, 'protocol': 'UDP', 'name': 'dns'}]}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a',
                               'name': 'a',
                               'ports': [{'containerPort': 53, 'name': 'dns', 'protocol': 'UDP'},
                                         {'containerPort': 80}]}]}}),
    ('service-ports-keyed-on-port',
     'io.k8s.api.core.v1.Service',
     {'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': 's'},
      'spec': {'selector': {'app': 'x'},
               'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080},
                         {'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 8443}]}},
     {'spec': {'ports': [{'port': 80, 'targetPort': 9090},
                         {'port': 8081, 'name': 'metrics', 'protocol': 'TCP'}]}},
     {'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': 's'},
      'spec': {'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 9090},
                         {'name': 'metrics', 'port': 8081, 'protocol': 'TCP'},
                         {'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 8443}],
               'selector': {'app': 'x'}}}),
    ('service-ports-delete',
     'io.k8s.api.core.v1.Service',
     {'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': 's'},
      'spec': {'selector': {'app': 'x'},
               'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080},
                         {'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 8443}]}},
     {'spec': {'ports': [{'$patch': 'delete', 'port': 443}]}},
     {'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': 's'},
      'spec': {'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080}],
               'selector': {'app': 'x'}}}),
    ('service-type-and-selector',
     'io.k8s.api.core.v1.Service',
     {'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': 's'},
      'spec': {'selector': {'app': 'x'},
               'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080},
                         {'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 8443}]}},
     {'spec': {'type': 'NodePort', 'selector': {'app': None, 'tier': 'web'}}},
     {'apiVersion': 'v1',
      'kind': 'Service',
      'metadata': {'name': 's'},
      'spec': {'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080},
                         {'name': 'https', 'port': 443, 'protocol': 'TCP', 'targetPort': 8443}],
               'selector': {'tier': 'web'},
               'type': 'NodePort'}}),
    ('configmap-data',
     'io.k8s.api.core.v1.ConfigMap',
     {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c'}, 'data': {'a': '1', 'b': '2'}},
     {'data': {'a': None, 'c': '3'}},
     {'apiVersion': 'v1', 'data': {'b': '2', 'c': '3'}, 'kind': 'ConfigMap', 'metadata': {'name': 'c'}}),
    ('pdb-selector-replace-strategy',
     'io.k8s.api.policy.v1.PodDisruptionBudget',
     {'apiVersion': 'policy/v1',
      'kind': 'PodDisruptionBudget',
      'metadata': {'name': 'p'},
      'spec': {'minAvailable': 1, 'selector': {'matchLabels': {'a': '1'}}}},
     {'spec': {'selector': {'matchLabels': {'b': '2'}}}},
     {'apiVersion': 'policy/v1',
      'kind': 'PodDisruptionBudget',
      'metadata': {'name': 'p'},
      'spec': {'minAvailable': 1, 'selector': {'matchLabels': {'b': '2'}}}}),
    ('owner-references-by-uid',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p',
                   'namespace': 'default',
                   'ownerReferences': [{'apiVersion': 'v1', 'kind': 'X', 'name': 'n', 'uid': 'u1'}]},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'ownerReferences': [{'apiVersion': 'v1', 'kind': 'Y', 'name': 'm', 'uid': 'u2'},
                                       {'uid': 'u1', 'controller': True}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p',
                   'namespace': 'default',
                   'ownerReferences': [{'apiVersion': 'v1', 'kind': 'Y', 'name': 'm', 'uid': 'u2'},
                                       {'apiVersion': 'v1',
                                        'controller': True,
                                        'kind': 'X',
                                        'name': 'n',
                                        'uid': 'u1'}]},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('image-pull-secrets-and-init-containers',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}],
               'initContainers': [{'name': 'i1', 'image': 'i1'}],
               'imagePullSecrets': [{'name': 's1'}]}},
     {'spec': {'initContainers': [{'name': 'i0', 'image': 'i0'}], 'imagePullSecrets': [{'name': 's2'}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}],
               'imagePullSecrets': [{'name': 's2'}, {'name': 's1'}],
               'initContainers': [{'image': 'i0', 'name': 'i0'}, {'image': 'i1', 'name': 'i1'}]}}),
    ('delete-list-on-replace-list',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'name': 'a', 'image': 'a', 'args': ['x', 'y', 'z']}]}},
     {'spec': {'containers': [{'name': 'a', '$deleteFromPrimitiveList/args': ['y']}]}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default'},
      'spec': {'containers': [{'args': ['x', 'z'], 'image': 'a', 'name': 'a'}]}}),
    ('scalar-replaces-map',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'labels': {'a': '1'}},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'annotations': {'x': 'y'}, 'generateName': 'g-'}},
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'annotations': {'x': 'y'},
                   'generateName': 'g-',
                   'labels': {'a': '1'},
                   'name': 'p',
                   'namespace': 'default'},
      'spec': {'containers': [{'image': 'a', 'name': 'a'}]}}),
    ('missing-merge-key',
     'io.k8s.api.apps.v1.Deployment',
     {'apiVersion': 'apps/v1',
      'kind': 'Deployment',
      'metadata': {'name': 'nginx-deployment', 'namespace': 'default', 'labels': {'app': 'nginx'}},
      'spec': {'replicas': 2,
               'selector': {'matchLabels': {'app': 'nginx'}},
               'template': {'metadata': {'labels': {'app': 'nginx'}},
                            'spec': {'containers': [{'name': 'a', 'image': 'a'}]}}}},
     {'spec': {'template': {'spec': {'containers': [{'image': 'b'}]}}}},
     {'code': 500, 'message': 'map: map[image:b] does not contain declared merge key: name'}),
    ('mixed-element-types',
     'io.k8s.api.core.v1.Pod',
     {'apiVersion': 'v1',
      'kind': 'Pod',
      'metadata': {'name': 'p', 'namespace': 'default', 'finalizers': ['a']},
      'spec': {'containers': [{'name': 'a', 'image': 'a'}]}},
     {'metadata': {'finalizers': [1]}},
     {'code': 500, 'message': 'list element types are not identical: [[a] [1]]'}),
]


@pytest.mark.parametrize(("doc", "patch", "schema", "expected"),
                         [pytest.param(c[2], c[3], c[1], c[4], id=c[0]) for c in SMP_CASES])
def test_strategic_merge_patch_matches_kubectl(doc, patch, schema, expected):
    before = (copy.deepcopy(doc), copy.deepcopy(patch))
    if "code" in expected:
        with pytest.raises(ApiError) as info:
            strategic_merge_patch(doc, patch, schema)
        assert (info.value.code, info.value.message) == (expected["code"], expected["message"])
    else:
        assert strategic_merge_patch(doc, patch, schema) == expected
    assert (doc, patch) == before, "inputs must not be modified"


def _case(case_id: str) -> tuple:
    return next(c for c in SMP_CASES if c[0] == case_id)


def test_wire_capture_result_in_full():
    _, schema, doc, patch, _ = _case("wire-capture-env-A")
    containers = strategic_merge_patch(doc, patch, schema)["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"name": "nginx", "image": "nginx:1.16.1", "env": [],
         "ports": [{"containerPort": 80}, {"containerPort": 443}]},
        {"name": "sidecar", "image": "busybox", "command": ["sleep", "3600"]},
    ]


def test_error_reasons():
    cases = {
        "retainkeys-patch-key-not-listed": (400, "BadRequest"),
        "delete-from-primitive-list-bad-key": (400, "BadRequest"),
        "set-element-order-bad-key": (400, "BadRequest"),
        # errors upstream does not map to a Status reach ErrorToAPIStatus: 500 without a reason
        "missing-merge-key": (500, ""),
        "patch-merge-map-refused": (500, ""),
    }
    for case_id, (code, reason) in cases.items():
        _, schema, doc, patch, _ = _case(case_id)
        with pytest.raises(ApiError) as info:
            strategic_merge_patch(doc, patch, schema)
        assert (info.value.code, info.value.reason) == (code, reason)


def test_lists_of_lists_are_invalid():
    with pytest.raises(ApiError) as info:
        strategic_merge_patch({"metadata": {"finalizers": [["a"]]}}, {"metadata": {"finalizers": [["b"]]}}, POD)
    assert (info.value.code, info.value.reason, info.value.message) == (422, "Invalid", INVALID)


def test_patch_body_shapes():
    doc = _case("patch-delete-map")[2]
    assert strategic_merge_patch(doc, None, POD) == doc
    assert strategic_merge_patch(doc, {}, POD) == doc
    assert strategic_merge_patch(doc, {"$patch": "delete"}, POD) == {}
    assert strategic_merge_patch(doc, {"$patch": "replace", "kind": "Pod", "spec": None}, POD) == {"kind": "Pod"}
    with pytest.raises(ApiError) as info:
        strategic_merge_patch(doc, [1], POD)
    assert (info.value.code, info.value.message) == (
        400, "json: cannot unmarshal array into Go value of type map[string]interface {}")


def test_unknown_schema_merges_maps_and_replaces_lists():
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["a"]},
           "spec": {"items": [{"name": "a", "v": 1}], "conf": {"x": 1, "y": 2}}}
    patch = {"metadata": {"finalizers": ["b"]},
             "spec": {"items": [{"name": "b"}], "conf": {"x": None, "z": 3}}}
    out = strategic_merge_patch(doc, patch, "com.example.v1.Widget")
    assert out["spec"] == {"items": [{"name": "b"}], "conf": {"y": 2, "z": 3}}
    assert out["metadata"]["finalizers"] == ["b"]


def test_free_form_map_inside_known_kind():
    doc = {"kind": "ConfigMap", "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
    out = strategic_merge_patch(doc, {"data": {"a": None, "c": "3"}, "binaryData": {"$patch": "delete"}},
                                "io.k8s.api.core.v1.ConfigMap")
    assert out == {"kind": "ConfigMap", "data": {"c": "3"}, "binaryData": {}}


def test_leftover_directives_are_not_stored():
    # new values arrive with directives only a merge consumes; upstream's typed decoding drops them
    doc = {"spec": {"containers": [{"name": "a", "image": "a"}]}}
    patch = {"spec": {
        "initContainers": [{"name": "i", "$setElementOrder/env": [{"name": "E"}], "env": [{"name": "E"}]}],
        "securityContext": {"$retainKeys": ["runAsUser"], "runAsUser": 1},
        "affinity": {"$patch": "replace", "nodeAffinity": {}},
        "containers": [{"name": "b", "resources": {"limits": None}, "env": [{"name": "E", "$patch": "x"}]}]}}
    out = strategic_merge_patch(doc, patch, POD)["spec"]
    assert out["initContainers"] == [{"name": "i", "env": [{"name": "E"}]}]
    assert out["securityContext"] == {"runAsUser": 1}
    assert "affinity" not in out  # a new value that is itself a directive vanishes, as upstream
    # upstream appends new list elements verbatim; its typed decoding then drops the unknown `$patch` key
    assert out["containers"] == [{"name": "b", "resources": {}, "env": [{"name": "E"}]},
                                 {"name": "a", "image": "a"}]
    replaced = strategic_merge_patch({"spec": {"tolerations": [{"key": "a"}]}},
                                     {"spec": {"tolerations": [{"key": "b", "$patch": "delete"}]}}, POD)
    assert replaced["spec"]["tolerations"] == [{"key": "b"}]


def test_merge_keys_and_strategies_come_from_schema():
    # topologySpreadConstraints merge on topologyKey; a Deployment's template is followed via $ref
    doc = {"spec": {"template": {"spec": {"containers": [], "topologySpreadConstraints": [
        {"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]}}}}
    patch = {"spec": {"template": {"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}}}}
    out = strategic_merge_patch(doc, patch, DEPLOYMENT)["spec"]["template"]["spec"]
    assert out["topologySpreadConstraints"] == [
        {"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}]


# ---------------------------------------------------------------------------------------------------
# Optional cross-check against the real kubectl: KUBELITE_KUBECTL_ORACLE=1 python -m pytest tests/api

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"


@pytest.mark.skipif(os.environ.get("KUBELITE_KUBECTL_ORACLE") != "1" or not shutil.which(KUBECTL),
                    reason="set KUBELITE_KUBECTL_ORACLE=1 to re-run the cases through kubectl")
@pytest.mark.parametrize("case", SMP_CASES, ids=[c[0] for c in SMP_CASES])
def test_cases_still_match_kubectl(case, tmp_path):
    _, _, doc, patch, expected = case
    manifest = tmp_path / "obj.json"
    manifest.write_text(json.dumps(doc))
    run = subprocess.run(
        [KUBECTL, "patch", "--local", "-f", str(manifest), "--type", "strategic", "-p", json.dumps(patch),
         "-o", "json", "--cache-dir", str(tmp_path / "cache"), "--kubeconfig", os.devnull],
        capture_output=True, text=True, timeout=60)
    if "code" in expected:
        assert run.returncode != 0
        assert run.stderr.strip() == "error: " + expected["message"].rstrip("\n")
    else:
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == expected
