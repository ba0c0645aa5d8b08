"""`/openapi/v2` as protobuf: the swagger 2.0 document encoded as gnostic's `openapi.v2.Document`.

kubectl asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` only (no JSON fallback)
when it validates on the client: for kinds whose v3 document has no PATCH operation declaring
`fieldValidation` (the create-only reviews), and for every kind with kubectl 1.27/1.28's older paths.

The mapping from swagger JSON to messages is gnostic's (google/gnostic openapiv2/OpenAPIv2.proto):
maps become repeated `Named*` pairs in document order, `x-` keys become `vendor_extension` entries whose
`Any.yaml` holds the value's text (JSON, which YAML parsers read), `default`/`enum`/`example` are `Any`s,
`type` is a `TypeItem` list, `items` an `ItemsItem` list, `additionalProperties` a schema-or-boolean, and
parameters are body or non-body (header/formData/query/path) sub-schemas.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable
from typing import Any

import orjson

from kubelite.api import openapi
from kubelite.api.resources import Registry

# what kubectl asks for, and what kube-openapi answers (Go's mime parser rejects the "@" spelling)
REQUEST_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
JSON = "application/json"

Encoder = Callable[[int, Any], bytes]

# --- wire format ----------------------------------------------------------------------------------


def _uvarint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len(num: int, payload: bytes) -> bytes:
    return _uvarint(num << 3 | 2) + _uvarint(len(payload)) + payload


def _string(num: int, value: Any) -> bytes:
    if not isinstance(value, str) or value == "":
        return b""
    return _len(num, value.encode())


def _strings(num: int, value: Any) -> bytes:
    if isinstance(value, str):
        value = [value]
    return b"".join(_len(num, str(v).encode()) for v in value or ())


def _bool(num: int, value: Any) -> bytes:
    return _uvarint(num << 3) + b"\x01" if value is True else b""


def _int64(num: int, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) == 0:
        return b""
    return _uvarint(num << 3) + _uvarint(int(value))


def _double(num: int, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float) or value == 0:
        return b""
    return _uvarint(num << 3 | 1) + struct.pack("<d", float(value))


def _yaml_text(value: Any) -> str:
    # JSON with ", " and ": " separators is YAML that gopkg.in/yaml.v2 (kube-openapi's reader) parses
    return json.dumps(value, ensure_ascii=False) + "\n"


def _any_body(value: Any) -> bytes:
    return _string(2, _yaml_text(value))  # Any.yaml


def _any(num: int, value: Any) -> bytes:
    return _len(num, _any_body(value))


def _anys(num: int, value: Any) -> bytes:
    return b"".join(_any(num, v) for v in value or ())


def _named(num: int, pairs: dict[str, Any], value_encoder: Callable[[Any], bytes]) -> bytes:
    """A map as repeated `Named*` messages: name = 1, value = 2."""
    out = []
    for name, value in pairs.items():
        out.append(_len(num, _string(1, name) + _len(2, value_encoder(value))))
    return b"".join(out)


def _vendor(num: int, obj: dict[str, Any]) -> bytes:
    return _named(num, {k: v for k, v in obj.items() if k.startswith("x-")}, _any_body)


def _message(fields: dict[str, tuple[int, Encoder]], vendor: int | None, obj: dict[str, Any]) -> bytes:
    """Fields in field-number order (as Go's marshaller writes them); keys the message lacks are dropped."""
    parts: list[tuple[int, bytes]] = []
    for key, value in obj.items():
        spec = fields.get(key)
        if spec is not None:
            parts.append((spec[0], spec[1](spec[0], value)))
    if vendor is not None:
        parts.append((vendor, _vendor(vendor, obj)))
    parts.sort(key=lambda p: p[0])
    return b"".join(p[1] for p in parts)


def _sub(encode: Callable[[Any], bytes]) -> Encoder:
    def field(num: int, value: Any) -> bytes:
        return _len(num, encode(value)) if isinstance(value, dict) else b""
    return field


def _subs(encode: Callable[[Any], bytes]) -> Encoder:
    def field(num: int, value: Any) -> bytes:
        return b"".join(_len(num, encode(v)) for v in value or () if isinstance(v, dict))
    return field


# --- schemas --------------------------------------------------------------------------------------


def _type_item(num: int, value: Any) -> bytes:
    return _len(num, _strings(1, value))  # TypeItem.value


def _items_item(num: int, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return _len(num, b"".join(_len(1, schema(v)) for v in items if isinstance(v, dict)))  # ItemsItem.schema


def _additional_properties(num: int, value: Any) -> bytes:
    if isinstance(value, bool):  # AdditionalPropertiesItem: schema = 1 | boolean = 2
        return _len(num, _uvarint(2 << 3) + (b"\x01" if value else b"\x00"))
    if isinstance(value, dict):
        return _len(num, _len(1, schema(value)))
    return b""


def _properties(num: int, value: Any) -> bytes:
    if not isinstance(value, dict):
        return b""
    return _len(num, _named(1, value, schema))  # Properties.additional_properties


def _xml(value: dict[str, Any]) -> bytes:
    return _message({"name": (1, _string), "namespace": (2, _string), "prefix": (3, _string),
                     "attribute": (4, _bool), "wrapped": (5, _bool)}, 6, value)


def _external_docs(value: dict[str, Any]) -> bytes:
    return _message({"description": (1, _string), "url": (2, _string)}, 3, value)


_SCHEMA_FIELDS: dict[str, tuple[int, Encoder]] = {}


def schema(value: dict[str, Any]) -> bytes:
    """One `openapi.v2.Schema` message."""
    return _message(_SCHEMA_FIELDS, 31, value)


_SCHEMA_FIELDS.update({
    "$ref": (1, _string), "format": (2, _string), "title": (3, _string), "description": (4, _string),
    "default": (5, _any), "multipleOf": (6, _double), "maximum": (7, _double), "exclusiveMaximum": (8, _bool),
    "minimum": (9, _double), "exclusiveMinimum": (10, _bool), "maxLength": (11, _int64),
    "minLength": (12, _int64), "pattern": (13, _string), "maxItems": (14, _int64), "minItems": (15, _int64),
    "uniqueItems": (16, _bool), "maxProperties": (17, _int64), "minProperties": (18, _int64),
    "required": (19, _strings), "enum": (20, _anys), "additionalProperties": (21, _additional_properties),
    "type": (22, _type_item), "items": (23, _items_item), "allOf": (24, _subs(schema)),
    "properties": (25, _properties), "discriminator": (26, _string), "readOnly": (27, _bool),
    "xml": (28, _sub(_xml)), "externalDocs": (29, _sub(_external_docs)), "example": (30, _any),
})


# --- parameters, responses, operations ------------------------------------------------------------

_PRIMITIVES_FIELDS: dict[str, tuple[int, Encoder]] = {}


def _primitives_items(value: dict[str, Any]) -> bytes:
    return _message(_PRIMITIVES_FIELDS, 18, value)


_PRIMITIVES_FIELDS.update({
    "type": (1, _string), "format": (2, _string), "items": (3, _sub(_primitives_items)),
    "collectionFormat": (4, _string), "default": (5, _any), "maximum": (6, _double),
    "exclusiveMaximum": (7, _bool), "minimum": (8, _double), "exclusiveMinimum": (9, _bool),
    "maxLength": (10, _int64), "minLength": (11, _int64), "pattern": (12, _string), "maxItems": (13, _int64),
    "minItems": (14, _int64), "uniqueItems": (15, _bool), "enum": (16, _anys), "multipleOf": (17, _double),
})


def _validation_fields(first: int) -> dict[str, tuple[int, Encoder]]:
    """type … multipleOf, numbered from `first` (the layout every non-body parameter sub-schema shares)."""
    names = (("type", _string), ("format", _string), ("items", _sub(_primitives_items)),
             ("collectionFormat", _string), ("default", _any), ("maximum", _double), ("exclusiveMaximum", _bool),
             ("minimum", _double), ("exclusiveMinimum", _bool), ("maxLength", _int64), ("minLength", _int64),
             ("pattern", _string), ("maxItems", _int64), ("minItems", _int64), ("uniqueItems", _bool),
             ("enum", _anys), ("multipleOf", _double))
    return {name: (first + i, enc) for i, (name, enc) in enumerate(names)}


_HEAD = {"required": (1, _bool), "in": (2, _string), "description": (3, _string), "name": (4, _string)}
# (NonBodyParameter field number, sub-schema fields, vendor_extension number)
_NON_BODY: dict[str, tuple[int, dict[str, tuple[int, Encoder]], int]] = {
    "header": (1, {**_HEAD, **_validation_fields(5)}, 22),
    "formData": (2, {**_HEAD, "allowEmptyValue": (5, _bool), **_validation_fields(6)}, 23),
    "query": (3, {**_HEAD, "allowEmptyValue": (5, _bool), **_validation_fields(6)}, 23),
    "path": (4, {**_HEAD, **_validation_fields(5)}, 22),
}
_BODY_FIELDS: dict[str, tuple[int, Encoder]] = {
    "description": (1, _string), "name": (2, _string), "in": (3, _string), "required": (4, _bool),
    "schema": (5, _sub(schema)),
}


def _parameter(value: dict[str, Any]) -> bytes:
    """`Parameter`: body_parameter = 1 | non_body_parameter = 2."""
    where = value.get("in")
    if where == "body":
        return _len(1, _message(_BODY_FIELDS, 6, value))
    spec = _NON_BODY.get(where or "")
    if spec is None:
        return b""
    num, fields, vendor = spec
    return _len(2, _len(num, _message(fields, vendor, value)))


def _parameters_item(value: dict[str, Any]) -> bytes:
    """`ParametersItem`: parameter = 1 | json_reference = 2."""
    if "$ref" in value:
        return _len(2, _string(1, value["$ref"]) + _string(2, value.get("description")))
    return _len(1, _parameter(value))


def _schema_item(num: int, value: Any) -> bytes:
    if not isinstance(value, dict):
        return b""
    if value.get("type") == "file":  # SchemaItem: schema = 1 | file_schema = 2
        file_fields = {"format": (1, _string), "title": (2, _string), "description": (3, _string),
                       "default": (4, _any), "required": (5, _strings), "type": (6, _string),
                       "readOnly": (7, _bool), "externalDocs": (8, _sub(_external_docs)), "example": (9, _any)}
        return _len(num, _len(2, _message(file_fields, 10, value)))
    return _len(num, _len(1, schema(value)))


def _response(value: dict[str, Any]) -> bytes:
    return _message({"description": (1, _string), "schema": (2, _schema_item),
                     "examples": (4, lambda n, v: _len(n, _named(1, v, _any_body)) if isinstance(v, dict) else b"")},
                    5, value)


def _response_value(value: dict[str, Any]) -> bytes:
    """`ResponseValue`: response = 1 | json_reference = 2."""
    if "$ref" in value:
        return _len(2, _string(1, value["$ref"]))
    return _len(1, _response(value))


def _responses(num: int, value: Any) -> bytes:
    if not isinstance(value, dict):
        return b""
    codes = {k: v for k, v in value.items() if not k.startswith("x-") and isinstance(v, dict)}
    return _len(num, _named(1, codes, _response_value) + _vendor(2, value))


def _security_requirement(value: dict[str, Any]) -> bytes:
    return _named(1, value, lambda scopes: _strings(1, scopes))


def _operation(value: dict[str, Any]) -> bytes:
    return _message({
        "tags": (1, _strings), "summary": (2, _string), "description": (3, _string),
        "externalDocs": (4, _sub(_external_docs)), "operationId": (5, _string), "produces": (6, _strings),
        "consumes": (7, _strings), "parameters": (8, _subs(_parameters_item)), "responses": (9, _responses),
        "schemes": (10, _strings), "deprecated": (11, _bool), "security": (12, _subs(_security_requirement)),
    }, 13, value)


def _path_item(value: dict[str, Any]) -> bytes:
    op = _sub(_operation)
    return _message({"$ref": (1, _string), "get": (2, op), "put": (3, op), "post": (4, op), "delete": (5, op),
                     "options": (6, op), "head": (7, op), "patch": (8, op),
                     "parameters": (9, _subs(_parameters_item))}, 10, value)


def _paths(num: int, value: Any) -> bytes:
    if not isinstance(value, dict):
        return b""
    items = {k: v for k, v in value.items() if not k.startswith("x-") and isinstance(v, dict)}
    return _len(num, _vendor(1, value) + _named(2, items, _path_item))


# --- the document ---------------------------------------------------------------------------------


def _info(value: dict[str, Any]) -> bytes:
    contact = {"name": (1, _string), "url": (2, _string), "email": (3, _string)}
    license_ = {"name": (1, _string), "url": (2, _string)}
    return _message({"title": (1, _string), "version": (2, _string), "description": (3, _string),
                     "termsOfService": (4, _string), "contact": (5, _sub(lambda v: _message(contact, 4, v))),
                     "license": (6, _sub(lambda v: _message(license_, 3, v)))}, 7, value)


def _oauth2_scopes(num: int, value: Any) -> bytes:
    if not isinstance(value, dict):  # Oauth2Scopes: repeated NamedString additional_properties = 1
        return b""
    return _len(num, b"".join(_len(1, _string(1, k) + _string(2, v)) for k, v in value.items()))


def _security_definition(value: dict[str, Any]) -> bytes:
    """`SecurityDefinitionsItem`, chosen by `type` (and `flow` for oauth2)."""
    kind = value.get("type")
    if kind == "basic":
        return _len(1, _message({"type": (1, _string), "description": (2, _string)}, 3, value))
    if kind == "apiKey":
        return _len(2, _message({"type": (1, _string), "name": (2, _string), "in": (3, _string),
                                 "description": (4, _string)}, 5, value))
    if kind == "oauth2":
        scopes = (3, _oauth2_scopes)
        flow = value.get("flow")
        if flow == "implicit":
            fields = {"type": (1, _string), "flow": (2, _string), "scopes": scopes,
                      "authorizationUrl": (4, _string), "description": (5, _string)}
            return _len(3, _message(fields, 6, value))
        if flow == "password":
            fields = {"type": (1, _string), "flow": (2, _string), "scopes": scopes, "tokenUrl": (4, _string),
                      "description": (5, _string)}
            return _len(4, _message(fields, 6, value))
        if flow == "application":
            fields = {"type": (1, _string), "flow": (2, _string), "scopes": scopes, "tokenUrl": (4, _string),
                      "description": (5, _string)}
            return _len(5, _message(fields, 6, value))
        fields = {"type": (1, _string), "flow": (2, _string), "scopes": scopes, "authorizationUrl": (4, _string),
                  "tokenUrl": (5, _string), "description": (6, _string)}
        return _len(6, _message(fields, 7, value))
    return b""


def _named_map(encode: Callable[[Any], bytes]) -> Encoder:
    """A message whose only field is `repeated Named* additional_properties = 1`."""
    def field(num: int, value: Any) -> bytes:
        return _len(num, _named(1, value, encode)) if isinstance(value, dict) else b""
    return field


_DOCUMENT_FIELDS: dict[str, tuple[int, Encoder]] = {
    "swagger": (1, _string), "info": (2, _sub(_info)), "host": (3, _string), "basePath": (4, _string),
    "schemes": (5, _strings), "consumes": (6, _strings), "produces": (7, _strings), "paths": (8, _paths),
    "definitions": (9, _named_map(schema)), "parameters": (10, _named_map(_parameter)),
    "responses": (11, _named_map(_response)), "security": (12, _subs(_security_requirement)),
    "securityDefinitions": (13, _named_map(_security_definition)),
    "tags": (14, _subs(lambda v: _message({"name": (1, _string), "description": (2, _string),
                                            "externalDocs": (3, _sub(_external_docs))}, 4, v))),
    "externalDocs": (15, _sub(_external_docs)),
}


def encode_document(doc: dict[str, Any]) -> bytes:
    """A swagger 2.0 document (JSON-shaped dict) as a serialized `openapi.v2.Document`."""
    return _message(_DOCUMENT_FIELDS, 16, doc)


@functools.lru_cache(maxsize=4)
def _encoded(document_json: bytes) -> bytes:
    # keyed on the JSON bytes openapi.openapi_v2 caches per registry fingerprint: their hash is computed once
    return encode_document(orjson.loads(document_json))


def openapi_v2_protobuf(registry: Registry) -> bytes:
    """`/openapi/v2` in protobuf for every served type (the same document as the JSON form)."""
    return _encoded(openapi.openapi_v2(registry))


def etag(registry: Registry) -> str:
    """The quoted ETag of `/openapi/v2` (the JSON document's sha512, for both encodings, as upstream)."""
    return '"' + openapi.document_hash(openapi.openapi_v2(registry)) + '"'


def negotiate(accept: str) -> str | None:
    """The media type to answer `/openapi/v2` with, or None (406).

    Clauses are tried by descending q, in the client's order otherwise; `*/*` and `application/*` get JSON."""
    clauses: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept or "*/*").split(",")):
        pieces = part.split(";")
        mtype = pieces[0].strip().lower()
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if mtype and q > 0:
            clauses.append((-q, index, mtype))
    for _, _, mtype in sorted(clauses):
        if mtype in (JSON, "*/*", "application/*"):
            return JSON
        if mtype in (REQUEST_MEDIA_TYPE, MEDIA_TYPE):
            return MEDIA_TYPE
    return None
