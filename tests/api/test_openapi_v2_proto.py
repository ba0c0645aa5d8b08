"""The /openapi/v2 protobuf: gnostic's openapi.v2.Document field numbers, read back with a tiny decoder."""

from __future__ import annotations

import json

import yaml

from kubelite.api import openapi_v2_proto as v2p
from kubelite.api.resources import Registry


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
            out.append((num, val))
        elif wt == 2:
            n, i = _varint(buf, i)
            out.append((num, buf[i:i + n]))
            i += n
        elif wt == 1:
            out.append((num, buf[i:i + 8]))
            i += 8
        else:
            raise AssertionError(f"unexpected wire type {wt}")
    return out


def one(buf: bytes, num: int):
    found = [v for n, v in fields(buf) if n == num]
    assert len(found) == 1, (num, found)
    return found[0]


def many(buf: bytes, num: int) -> list:
    return [v for n, v in fields(buf) if n == num]


def named(buf: bytes, num: int) -> dict[str, bytes]:
    """repeated Named* pairs (name = 1, value = 2) as a dict."""
    return {one(pair, 1).decode(): one(pair, 2) for pair in many(buf, num)}


def extensions(buf: bytes, num: int) -> dict:
    return {name: yaml.safe_load(one(value, 2).decode()) for name, value in named(buf, num).items()}


def test_schema_keywords():
    msg = v2p.schema({"description": "d", "type": "object", "required": ["a"],
                      "properties": {"a": {"type": "array", "items": {"$ref": "#/definitions/X"}}},
                      "additionalProperties": False, "x-kubernetes-list-type": "map", "default": {"k": 1},
                      "maxLength": 5, "minimum": 1.5, "uniqueItems": True})
    assert one(msg, 4) == b"d"
    assert many(one(msg, 22), 1) == [b"object"]  # TypeItem.value
    assert many(msg, 19) == [b"a"]
    props = named(one(msg, 25), 1)
    items = one(props["a"], 23)  # ItemsItem
    assert one(one(items, 1), 1) == b"#/definitions/X"
    assert fields(one(msg, 21)) == [(2, 0)]  # AdditionalPropertiesItem.boolean = false
    assert extensions(msg, 31) == {"x-kubernetes-list-type": "map"}
    assert yaml.safe_load(one(one(msg, 5), 2).decode()) == {"k": 1}  # default: Any.yaml
    assert one(msg, 11) == 5
    assert one(msg, 16) == 1
    assert [n for n, _ in fields(msg)] == sorted(n for n, _ in fields(msg))  # field-number order


def test_document_for_the_served_types():
    doc = v2p.openapi_v2_protobuf(Registry())
    assert one(doc, 1) == b"2.0"
    assert one(one(doc, 2), 1) == b"Kubernetes"
    definitions = named(one(doc, 9), 1)
    review = definitions["io.k8s.api.authentication.v1.TokenReview"]
    assert extensions(review, 31)["x-kubernetes-group-version-kind"] == [
        {"group": "authentication.k8s.io", "kind": "TokenReview", "version": "v1"}]
    assert "spec" in named(one(review, 25), 1)
    paths = named(one(doc, 8), 2)
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = one(item, 8)
    assert extensions(patch, 13)["x-kubernetes-group-version-kind"] == {
        "group": "apps", "kind": "Deployment", "version": "v1"}
    query_names = []
    for param_item in many(patch, 8):
        param = one(param_item, 1)  # ParametersItem.parameter
        for n, v in fields(param):
            if n == 2:  # non_body_parameter
                sub = one(v, 3)  # query_parameter_sub_schema
                query_names.append(one(sub, 4).decode())
                assert one(sub, 2) == b"query"
            else:
                assert n == 1 and one(v, 3) == b"body"
    assert "fieldValidation" in query_names
    responses = named(one(patch, 9), 1)
    ok = one(responses["200"], 1)
    assert one(one(one(ok, 2), 1), 1) == b"#/definitions/io.k8s.api.apps.v1.Deployment"
    # TokenReview: create only, so no PATCH: kubectl validates on the client with these definitions
    review_path = paths["/apis/authentication.k8s.io/v1/tokenreviews"]
    assert [n for n, _ in fields(review_path) if n in range(2, 9)] == [4]
    security = named(one(doc, 13), 1)
    api_key = one(security["BearerToken"], 2)
    assert one(api_key, 1) == b"apiKey" and one(api_key, 3) == b"header"


def test_every_reference_resolves():
    doc = json.loads(v2p.openapi.openapi_v2(Registry()))
    encoded = named(one(v2p.openapi_v2_protobuf(Registry()), 9), 1)
    assert set(encoded) == set(doc["definitions"])


def test_negotiation():
    assert v2p.negotiate("application/com.github.proto-openapi.spec.v2@v1.0+protobuf") == v2p.MEDIA_TYPE
    assert v2p.negotiate("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json") == \
        v2p.MEDIA_TYPE
    assert v2p.negotiate("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf") == \
        "application/json"
    assert v2p.negotiate("application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf") \
        == v2p.MEDIA_TYPE
    assert v2p.negotiate("") == "application/json"
    assert v2p.negotiate("*/*") == "application/json"
    assert v2p.negotiate("text/html") is None
