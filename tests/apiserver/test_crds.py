"""CustomResourceDefinitions: structural schemas, CRD validation, and the served custom resources over HTTP."""

from __future__ import annotations

import copy
import json
import os
import threading
import time

import orjson
import pytest
import requests

from kubelite.api import structural
from kubelite.api import validation_crd as vcrd

# ---------------------------------------------------------------------------------------------- unit

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "port": {"x-kubernetes-int-or-string": True},
                "when": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "x-kubernetes-preserve-unknown-fields": True},
                "nested": {"type": "object", "default": {},
                           "properties": {"level": {"type": "integer", "default": 3}}},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
    },
}


def messages(causes):
    return [f"{c['field']}: {c['message']}" for c in causes]


def test_type_error_is_worded_as_upstream():
    causes = structural.validate({"spec": {"size": "string"}}, SCHEMA)
    assert messages(causes) == [
        'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"']
    assert causes[0]["type"] == "FieldValueTypeInvalid"


def test_value_validations():
    obj = {"spec": {"size": 20, "color": "green", "name": "ABCDEFG", "tags": ["a", "b", "c"],
                    "port": 1.5, "when": "yesterday"}}
    got = messages(structural.validate(obj, SCHEMA))
    assert "spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10" in got
    assert 'spec.color: Unsupported value: "green": supported values: "red", "blue"' in got
    assert "spec.name: Too long: may not be more than 5 bytes" in got
    assert "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'" in got
    assert "spec.tags: Too many: 3: must have at most 2 items" in got
    assert 'spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"' in got
    assert 'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"' in got
    assert messages(structural.validate({"spec": {}}, SCHEMA)) == ["spec.size: Required value"]
    assert structural.validate({"spec": {"size": 0}}, SCHEMA)[0]["message"].endswith(
        "spec.size in body should be greater than or equal to 1")


def test_int_or_string_and_preserved_fields_pass():
    obj = {"spec": {"size": 2, "port": "http", "free": {"any": {"thing": 1}}, "labels": {"a": "b"},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}}}
    assert structural.validate(obj, SCHEMA) == []


def test_embedded_resource_needs_kind_and_api_version():
    got = messages(structural.validate({"spec": {"size": 1, "template": {"metadata": {}}}}, SCHEMA))
    assert got == ["spec.template.apiVersion: Required value: must not be empty",
                   "spec.template.kind: Required value: must not be empty"]


def test_prune_reports_unknown_paths_and_keeps_preserved():
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "bogus": 1}, "extra": 1,
           "spec": {"size": 1, "zzz": 2, "free": {"k": 1}, "labels": {"a": "b"}, "tags": ["x"],
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "nope": 1},
                                 "whatever": 1}}}
    unknown = []
    structural.prune(obj, SCHEMA, unknown, root=True)
    assert sorted(unknown) == ["extra", "metadata.bogus", "spec.template.metadata.nope", "spec.zzz"]
    assert obj["spec"]["free"] == {"k": 1} and obj["spec"]["template"]["whatever"] == 1
    assert obj["metadata"] == {"name": "a"}


def test_defaults_fill_absent_and_null_fields():
    obj = {"spec": {"size": 1, "color": None, "name": None}}
    structural.apply_defaults(obj, SCHEMA)
    assert obj["spec"]["color"] == "red"
    assert obj["spec"]["nested"] == {"level": 3}
    assert "name" not in obj["spec"]  # null of a non-nullable field without default is dropped


def test_schema_must_be_structural():
    bad = {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}},
                                             "list": {"type": "array"},
                                             "odd": {"type": "strange"}},
           "additionalProperties": {"type": "string"}}
    got = messages(structural.check_schema(bad, "spec.validation.openAPIV3Schema"))
    assert ("spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for "
            "specified object fields") in got
    assert "spec.validation.openAPIV3Schema.properties[list].items: Required value: must be specified" in got
    assert ("spec.validation.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root"
            in got)
    assert any(m.startswith('spec.validation.openAPIV3Schema.properties[odd].type: Unsupported value: "strange"')
               for m in got)
    assert structural.check_schema(SCHEMA, "x") == []


def test_go_float():
    assert structural.go_float(10) == "10"
    assert structural.go_float(1.5) == "1.5"
    assert structural.go_float(1e21) == "1e+21"


def crd(**spec_changes):
    base = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)}}]},
    }
    base["spec"].update(spec_changes)
    vcrd.apply_defaults(base)
    return base


def test_crd_defaults_and_valid():
    c = crd()
    assert c["spec"]["names"]["singular"] == "widget" and c["spec"]["names"]["listKind"] == "WidgetList"
    assert c["spec"]["conversion"] == {"strategy": "None"}
    assert vcrd.validate(c) == []


def test_crd_validation_messages():
    c = crd(group="example", scope="Global")
    c["metadata"]["name"] = "wrong.example"
    c["spec"]["versions"].append({"name": "v2", "served": True, "storage": True})
    got = messages(vcrd.validate(c))
    assert 'metadata.name: Invalid value: "wrong.example": must be spec.names.plural+"."+spec.group' in got
    assert 'spec.group: Invalid value: "example": should be a domain with at least one dot' in got
    assert 'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"' in got
    assert "spec.versions[1].schema.openAPIV3Schema: Required value" in got
    assert any(m.startswith("spec.versions: Invalid value:") and
               m.endswith("must have exactly one version marked as storage version") for m in got)


def test_crd_schema_errors_use_hoisted_path():
    c = crd()
    c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["x"] = {}
    assert messages(vcrd.validate(c)) == [
        "spec.validation.openAPIV3Schema.properties[spec].properties[x].type: Required value: must not be empty "
        "for specified object fields"]


def test_establish_sets_conditions_and_names():
    c = crd()
    vcrd.establish(c)
    st = c["status"]
    assert st["acceptedNames"]["plural"] == "widgets" and st["storedVersions"] == ["v1"]
    assert [(x["type"], x["status"]) for x in st["conditions"]] == [("NamesAccepted", "True"),
                                                                   ("Established", "True")]


# ---------------------------------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def http(cluster):
    s = requests.Session()
    s.trust_env = False
    pki = os.path.join(cluster.data_dir, "pki")
    s.verify = os.path.join(pki, "ca.crt")
    s.cert = (os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    s.base = cluster.url
    return s


def call(http, method, path, body=None, content_type="application/json", **kw):
    headers = kw.pop("headers", {})
    if body is not None:
        headers.setdefault("Content-Type", content_type)
    data = body if isinstance(body, (bytes, str)) or body is None else orjson.dumps(body)
    r = http.request(method, http.base + path, data=data, headers=headers, **kw)
    assert r.status_code < 500, (r.status_code, r.text)
    return r


GROUP = "crdhttp.example.com"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GADGETS = f"/apis/{GROUP}/v1/namespaces/default/gadgets"


def gadget_crd():
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["spec"]["properties"]["replicas"] = {"type": "integer"}
    schema["properties"]["spec"]["properties"]["selector"] = {"type": "string"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "kind": "Gadget", "shortNames": ["gd"], "categories": ["all"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema},
                               "subresources": {"status": {}, "scale": {
                                   "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                   "labelSelectorPath": ".spec.selector"}},
                               "additionalPrinterColumns": [
                                   {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                                   {"name": "Color", "type": "string", "jsonPath": ".spec.color"}]}]},
    }


@pytest.fixture(scope="module")
def gadgets(http):
    r = call(http, "POST", CRD_PATH, gadget_crd())
    assert r.status_code == 201, r.text
    yield r.json()
    call(http, "DELETE", f"{CRD_PATH}/gadgets.{GROUP}")


def gadget(name, **spec):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": name},
            "spec": {"size": 1, **spec}}


def test_crd_create_response_is_established(gadgets):
    conds = {c["type"]: c["status"] for c in gadgets["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert gadgets["status"]["acceptedNames"]["shortNames"] == ["gd"]


def test_invalid_crd_is_422(http):
    body = gadget_crd()
    body["metadata"]["name"] = "nope.example.com"
    body["spec"]["versions"][0]["storage"] = False
    r = call(http, "POST", CRD_PATH, body)
    assert r.status_code == 422
    msg = r.json()["message"]
    assert msg.startswith('CustomResourceDefinition.apiextensions.k8s.io "nope.example.com" is invalid: [')
    assert "must have exactly one version marked as storage version" in msg


def test_discovery_serves_the_new_group(http, gadgets):
    r = call(http, "GET", f"/apis/{GROUP}/v1")
    res = {x["name"]: x for x in r.json()["resources"]}
    assert set(res) == {"gadgets", "gadgets/status", "gadgets/scale"}
    assert res["gadgets"]["shortNames"] == ["gd"] and res["gadgets"]["categories"] == ["all"]
    assert res["gadgets"]["verbs"] == ["delete", "deletecollection", "get", "list", "patch", "create", "update",
                                       "watch"]
    agg = call(http, "GET", "/apis", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"}).json()
    assert GROUP in [g["metadata"]["name"] for g in agg["items"]]
    index = call(http, "GET", "/openapi/v3").json()["paths"]
    doc = call(http, "GET", index[f"apis/{GROUP}/v1"]["serverRelativeURL"]).json()
    schema = doc["components"]["schemas"]["com.example.crdhttp.v1.Gadget"]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": GROUP, "kind": "Gadget", "version": "v1"}]
    assert "size" in schema["properties"]["spec"]["properties"]


def test_create_defaults_prunes_and_validates(http, gadgets):
    r = call(http, "POST", GADGETS, gadget("g1", junk=1) | {"status": {"replicas": 9}})
    assert r.status_code == 201, r.text
    obj = r.json()
    assert obj["spec"]["color"] == "red" and "junk" not in obj["spec"]
    assert "status" not in obj  # the status subresource owns status
    assert r.headers.get("Warning") == '299 - "unknown field \\"spec.junk\\""'
    assert obj["metadata"]["generation"] == 1
    r = call(http, "POST", GADGETS + "?fieldValidation=Strict", gadget("g2", junk=1))
    assert r.status_code == 400
    assert r.json()["message"] == ('Gadget in version "v1" cannot be handled as a Gadget: strict decoding error: '
                                   'unknown field "spec.junk"')
    r = call(http, "POST", GADGETS, gadget("g3", size="big"))
    assert r.status_code == 422
    body = r.json()
    assert body["message"] == (f'Gadget.{GROUP} "g3" is invalid: spec.size: Invalid value: "string": spec.size in '
                               'body must be of type integer: "string"')
    assert body["details"]["causes"] == [{"reason": "FieldValueTypeInvalid", "field": "spec.size", "message":
                                          'Invalid value: "string": spec.size in body must be of type integer: '
                                          '"string"'}]


def test_patch_types(http, gadgets):
    call(http, "POST", GADGETS, gadget("p1"))
    r = call(http, "PATCH", GADGETS + "/p1", {"spec": {"size": 4}},
             content_type="application/strategic-merge-patch+json")
    assert r.status_code == 415 and r.json()["reason"] == "UnsupportedMediaType"
    r = call(http, "PATCH", GADGETS + "/p1", {"spec": {"size": 4}}, content_type="application/merge-patch+json")
    assert r.status_code == 200 and r.json()["spec"]["size"] == 4 and r.json()["metadata"]["generation"] == 2
    r = call(http, "PATCH", GADGETS + "/p1", [{"op": "replace", "path": "/spec/size", "value": 99}],
             content_type="application/json-patch+json")
    assert r.status_code == 422 and "should be less than or equal to 10" in r.json()["message"]


def test_status_and_scale_subresources(http, gadgets):
    call(http, "POST", GADGETS, gadget("s1", replicas=2, selector="app=s1"))
    r = call(http, "PATCH", GADGETS + "/s1/status", {"status": {"replicas": 2}},
             content_type="application/merge-patch+json")
    assert r.status_code == 200 and r.json()["status"] == {"replicas": 2}
    # the main resource ignores status changes
    r = call(http, "PATCH", GADGETS + "/s1", {"status": {"replicas": 7}}, content_type="application/merge-patch+json")
    assert r.json()["status"] == {"replicas": 2}
    scale = call(http, "GET", GADGETS + "/s1/scale").json()
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"] == {"replicas": 2, "selector": "app=s1"}
    scale["spec"]["replicas"] = 5
    r = call(http, "PUT", GADGETS + "/s1/scale", scale)
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 5
    assert call(http, "GET", GADGETS + "/s1").json()["spec"]["replicas"] == 5
    r = call(http, "PATCH", GADGETS + "/s1/scale", {"spec": {"replicas": 3}},
             content_type="application/merge-patch+json")
    assert r.json()["spec"]["replicas"] == 3


def test_table_has_printer_columns(http, gadgets):
    call(http, "POST", GADGETS, gadget("t1", size=3))
    table = call(http, "GET", GADGETS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Color"]
    row = next(r for r in table["rows"] if r["cells"][0] == "t1")
    assert row["cells"] == ["t1", 3, "red"]


def test_watch_sees_custom_resources(http, gadgets):
    rv = call(http, "GET", GADGETS).json()["metadata"]["resourceVersion"]
    events = []

    def reader():
        with http.get(http.base + GADGETS + f"?watch=1&resourceVersion={rv}&timeoutSeconds=5", stream=True) as r:
            for line in r.iter_lines():
                if line:
                    events.append(json.loads(line))
                    return

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    call(http, "POST", GADGETS, gadget("w1"))
    t.join(10)
    assert events and events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "w1"


def test_storage_key_layout(cluster, gadgets, http):
    call(http, "POST", GADGETS, gadget("k1"))
    import sqlite3

    db = sqlite3.connect(os.path.join(cluster.data_dir, "state.db"))
    try:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        found = False
        for table in tables:
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            if "key" in cols:
                rows = db.execute(f"select key from {table} where key like ?",
                                  (f"/registry/{GROUP}/gadgets/default/k1%",)).fetchall()
                found = found or bool(rows)
        assert found
    finally:
        db.close()


def test_delete_crd_removes_instances_and_stops_serving(http):
    body = gadget_crd()
    body["metadata"]["name"] = f"gizmos.{GROUP}"
    body["spec"]["names"] = {"plural": "gizmos", "kind": "Gizmo"}
    assert call(http, "POST", CRD_PATH, body).status_code == 201
    path = f"/apis/{GROUP}/v1/namespaces/default/gizmos"
    g = gadget("z1") | {"kind": "Gizmo"}
    assert call(http, "POST", path, g).status_code == 201
    r = call(http, "DELETE", f"{CRD_PATH}/gizmos.{GROUP}")
    assert r.status_code == 200
    assert "customresourcecleanup.apiextensions.k8s.io" in r.json()["metadata"]["finalizers"]
    deadline = time.time() + 5
    while time.time() < deadline and call(http, "GET", f"{CRD_PATH}/gizmos.{GROUP}").status_code != 404:
        time.sleep(0.1)
    assert call(http, "GET", f"{CRD_PATH}/gizmos.{GROUP}").status_code == 404
    assert call(http, "GET", path).status_code == 404
    # recreated, the resource starts empty: the instances went with the CRD
    assert call(http, "POST", CRD_PATH, body).status_code == 201
    assert call(http, "GET", path).json()["items"] == []
    call(http, "DELETE", f"{CRD_PATH}/gizmos.{GROUP}")
