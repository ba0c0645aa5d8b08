"""Decoding kubectl's protobuf request bodies (fixtures captured by scripts/capture_protobuf_fixtures.py)."""

from __future__ import annotations

import base64
import glob
import json
import os
import random
from datetime import UTC, datetime

import pytest

from kubelite.api import protobuf
from kubelite.api.errors import ApiError
from kubelite.api.proto_messages import INLINE, KINDS, LIST_WRAPPERS, MESSAGES, REPEATED

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "protobuf")
CASES = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "*.json")))


def load(name: str) -> tuple[bytes, dict]:
    with open(os.path.join(FIXTURES, name + ".bin"), "rb") as f:
        body = f.read()
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        return body, json.load(f)


def test_fixtures_present():
    assert len(CASES) >= 25
    for name in ("namespace", "deployment", "token", "can_i", "can_i_list", "whoami", "secret"):
        assert name in CASES


@pytest.mark.parametrize("name", CASES)
def test_kubectl_body_decodes_to_dry_run_json(name):
    body, meta = load(name)
    assert protobuf.is_protobuf(meta["content_type"])
    assert protobuf.decode(body) == meta["expected"]


def test_namespace_shape():
    body, _ = load("namespace")
    assert protobuf.decode(body) == {"kind": "Namespace", "apiVersion": "v1",
                                     "metadata": {"name": "ns1", "creationTimestamp": None},
                                     "spec": {}, "status": {}}


def test_special_types_in_fixtures():
    deployment = protobuf.decode(load("deployment")[0])
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {}
    assert protobuf.decode(load("deployment_zero")[0])["spec"]["replicas"] == 0  # pointer kept at zero
    assert protobuf.decode(load("secret")[0])["data"] == {"k": base64.b64encode(b"v").decode()}
    port = protobuf.decode(load("service_clusterip")[0])["spec"]["ports"][0]
    assert port["targetPort"] == 8080 and port["port"] == 5678
    assert protobuf.decode(load("pdb_percent")[0])["spec"]["maxUnavailable"] == "50%"
    assert protobuf.decode(load("quota")[0])["spec"]["hard"] == {"cpu": "1", "memory": "1G", "pods": "2"}
    assert protobuf.decode(load("priorityclass_zero")[0])["value"] == 0  # no omitempty


@pytest.mark.parametrize("content_type,expected", [
    ("application/vnd.kubernetes.protobuf", True),
    ("application/vnd.kubernetes.protobuf; charset=utf-8", True),
    ("Application/VND.Kubernetes.Protobuf", True),
    ("application/json", False),
    ("application/vnd.kubernetes.protobuf+json", False),
    ("", False),
    (None, False),
])
def test_is_protobuf(content_type, expected):
    assert protobuf.is_protobuf(content_type) is expected


# --- a tiny encoder, driven by the same tables, for round trips ---

def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wt: int) -> bytes:
    return _varint(num << 3 | wt)


def _ld(num: int, data: bytes) -> bytes:
    return _key(num, 2) + _varint(len(data)) + data


def _time(text: str | None, micro: bool = False) -> bytes:
    if text is None:
        return b""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    t = datetime.strptime(text, fmt).replace(tzinfo=UTC)
    seconds = int(t.timestamp())
    return _key(1, 0) + _varint(seconds) + _key(2, 0) + _varint(t.microsecond * 1000)


def _encode_value(kind, value) -> bytes:
    if kind == "apis.meta.v1.Time":
        return _time(value)
    if kind == "apis.meta.v1.MicroTime":
        return _time(value, micro=True)
    if kind == "api.resource.Quantity":
        return _ld(1, value.encode())
    if kind == "util.intstr.IntOrString":
        if isinstance(value, str):
            return _key(1, 0) + _varint(1) + _ld(3, value.encode())
        return _key(1, 0) + _varint(0) + _key(2, 0) + _varint(value)
    if kind in ("runtime.RawExtension", "apis.meta.v1.FieldsV1"):
        return _ld(1, json.dumps(value).encode())
    if kind in LIST_WRAPPERS:
        return b"".join(_ld(1, v.encode()) for v in value)
    return encode_message(kind, value)


def _encode_field(num: int, kind, value) -> bytes:
    if kind == "string":
        return _ld(num, value.encode())
    if kind == "bytes":
        return _ld(num, base64.b64decode(value))
    if kind == "bool":
        return _key(num, 0) + _varint(int(value))
    if kind in ("int32", "int64", "uint32", "uint64"):
        return _key(num, 0) + _varint(value)
    return _ld(num, _encode_value(kind, value))


def encode_message(name: str, obj: dict) -> bytes:
    out = b""
    for num, (json_name, kind, flags) in sorted(MESSAGES[name].items()):
        if flags & INLINE:
            sub_names = {spec[0] for spec in MESSAGES[kind].values()}
            sub = {k: v for k, v in obj.items() if k in sub_names}
            out += _ld(num, encode_message(kind, sub))
            continue
        if obj.get(json_name) is None:
            continue
        value = obj[json_name]
        if isinstance(kind, tuple):
            for k, v in value.items():
                out += _ld(num, _encode_field(1, kind[1], k) + _encode_field(2, kind[2], v))
        elif flags & REPEATED:
            for v in value:
                out += _encode_field(num, kind, v)
        else:
            out += _encode_field(num, kind, value)
    return out


def envelope(api_version: str, kind: str, raw: bytes, extra: bytes = b"") -> bytes:
    type_meta = _ld(1, api_version.encode()) + _ld(2, kind.encode())
    return b"k8s\x00" + _ld(1, type_meta) + _ld(2, raw) + extra


def encode(obj: dict) -> bytes:
    api_version, kind = obj["apiVersion"], obj["kind"]
    message = KINDS.get((api_version, kind), "apis.meta.v1.DeleteOptions")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return envelope(api_version, kind, encode_message(message, body))


META = {"name": "x", "namespace": "default", "creationTimestamp": None}

ROUND_TRIPS = [
    {"kind": "Pod", "apiVersion": "v1",
     "metadata": {"name": "p", "namespace": "default", "uid": "u-1", "resourceVersion": "7", "generation": 3,
                  "creationTimestamp": "2024-01-02T03:04:05Z", "deletionTimestamp": "2024-01-02T03:05:00Z",
                  "deletionGracePeriodSeconds": 0, "labels": {"app": "x", "empty": ""},
                  "annotations": {"a": "b"}, "finalizers": ["f1"],
                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-2",
                                       "controller": True, "blockOwnerDeletion": False}],
                  "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                                     "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                                     "fieldsV1": {"f:metadata": {"f:labels": {}}}}]},
     "spec": {"containers": [{"name": "c", "image": "nginx", "args": ["-v", ""],
                              "ports": [{"containerPort": 80, "protocol": "TCP"}],
                              "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                              "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5,
                                                "terminationGracePeriodSeconds": 0},
                              "env": [{"name": "E", "value": "v"}]}],
              "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                          {"name": "cm", "configMap": {"name": "cfg", "defaultMode": 420}}],
              "terminationGracePeriodSeconds": 30, "enableServiceLinks": False, "priority": -5},
     "status": {"phase": "Running", "podIP": "10.0.0.1", "startTime": "2024-01-02T03:04:06Z"}},
    {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": META,
     "eventTime": "2024-01-02T03:04:05.123456Z", "reportingController": "c", "reportingInstance": "i",
     "action": "Act", "reason": "R", "regarding": {"kind": "Pod", "name": "p"}, "note": "n", "type": "Normal",
     "deprecatedSource": {}, "deprecatedFirstTimestamp": None, "deprecatedLastTimestamp": None},
    {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": META,
     "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2024-05-06T07:08:09.000001Z"}},
    {"kind": "ControllerRevision", "apiVersion": "apps/v1", "metadata": META,
     "data": {"spec": {"template": {"x": [1, 2.5, None, "s"]}}}, "revision": 4},
    {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": META,
     "spec": {"replicas": 3}, "status": {"replicas": 1, "selector": "app=x"}},
    {"kind": "Eviction", "apiVersion": "policy/v1", "metadata": META,
     "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"},
                       "propagationPolicy": "Background", "dryRun": ["All"]}},
    {"kind": "Binding", "apiVersion": "v1", "metadata": META, "target": {"kind": "Node", "name": "node1"}},
    {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 10, "orphanDependents": False,
     "propagationPolicy": "Foreground"},
    {"kind": "DeleteOptions", "apiVersion": "apps/v1", "preconditions": {"resourceVersion": "12"}},
    {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": None},
     "spec": {"token": "abc", "audiences": ["api"]}, "status": {"user": {}}},
    {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
     "metadata": {"creationTimestamp": None},
     "spec": {"resourceAttributes": {"verb": "get", "resource": "pods",
                                     "fieldSelector": {"rawSelector": "a=b"}},
              "user": "alice", "groups": ["g"], "extra": {"scopes": ["s1", "s2"], "empty": []}, "uid": "1"},
     "status": {"allowed": True, "reason": "ok"}},
    {"kind": "LocalSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": META,
     "spec": {"nonResourceAttributes": {"path": "/x", "verb": "get"}, "user": "bob"},
     "status": {"allowed": False, "denied": True}},
    {"kind": "Secret", "apiVersion": "v1", "metadata": META,
     "data": {"bin": base64.b64encode(bytes(range(256))).decode(), "empty": ""}, "type": "Opaque",
     "immutable": False},
    {"kind": "Service", "apiVersion": "v1", "metadata": META,
     "spec": {"ports": [{"name": "https", "port": 443, "targetPort": "https", "nodePort": 30443}],
              "selector": {"app": "x"}, "type": "NodePort", "clusterIPs": ["10.0.0.1"],
              "ipFamilies": ["IPv4"], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
     "status": {"loadBalancer": {}}},
]


@pytest.mark.parametrize("obj", ROUND_TRIPS, ids=lambda o: f"{o['apiVersion']}/{o['kind']}")
def test_round_trip(obj):
    assert protobuf.decode(encode(obj)) == obj


def test_unknown_fields_are_skipped():
    raw = encode_message("core.v1.ConfigMap", {"metadata": META, "data": {"a": "b"}}) + _ld(99, b"zzz") + \
        _key(98, 0) + _varint(5)
    assert protobuf.decode(envelope("v1", "ConfigMap", raw)) == {
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": META, "data": {"a": "b"}}


def test_packed_repeated_ints():
    packed = _varint(1) + _varint(2) + _varint(300)
    rep_int = next((m, n) for m, t in MESSAGES.items() for n, (_, k, f) in t.items()
                   if f & REPEATED and k in ("int32", "int64"))
    message, num = rep_int
    decoded = protobuf._message(message, _ld(num, packed) + _key(num, 0) + _varint(7), 0)
    assert decoded[MESSAGES[message][num][0]] == [1, 2, 300, 7]


@pytest.mark.parametrize("nanos,text", [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (150_000_000, "150ms"), (1_000_000_000, "1s"),
    (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"), (3723_500_000_000, "1h2m3.5s"), (-2 * 10**9, "-2s"),
])
def test_go_duration(nanos, text):
    assert protobuf.go_duration(nanos) == text


def test_negative_int32():
    raw = encode_message("scheduling.v1.PriorityClass", {"metadata": META}) + _key(2, 0) + _varint(-7)
    assert protobuf.decode(envelope("scheduling.k8s.io/v1", "PriorityClass", raw))["value"] == -7


# --- malformed input: always a 400 ApiError, never another exception ---

def _expect_400(body: bytes, text: str = "") -> ApiError:
    with pytest.raises(ApiError) as err:
        protobuf.decode(body)
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    assert text in err.value.message
    return err.value


def test_wrong_magic():
    _expect_400(b'{"kind":"Namespace"}', "does not appear to be a protobuf message")
    _expect_400(b"", "does not appear to be a protobuf message")


def test_truncated_varint():
    _expect_400(b"k8s\x00\x0a\x80", "unexpected EOF")
    raw = encode_message("core.v1.Namespace", {"metadata": {"name": "x"}}) + _key(7, 0) + b"\xff\xff"
    _expect_400(envelope("v1", "Namespace", raw), "unexpected EOF")


def test_truncated_length():
    body, _ = load("deployment")
    _expect_400(body[:-3], "unexpected EOF")


def test_unknown_type():
    _expect_400(envelope("v1", "Frobnicator", b""), 'no kind "Frobnicator" is registered for version "v1"')
    _expect_400(envelope("apps/v2", "Deployment", b""), 'no kind "Deployment"')
    _expect_400(b"k8s\x00" + _ld(2, b""), "Kind")


def test_wrong_wire_type_and_bad_utf8():
    _expect_400(envelope("v1", "Namespace", _key(1, 0) + _varint(3)), "wireType")
    _expect_400(envelope("v1", "Namespace", _ld(1, _ld(1, b"\xff\xfe"))), "UTF-8")
    _expect_400(envelope("v1", "Namespace", _key(1, 3)), "wireType")


def test_content_encoding_rejected():
    _expect_400(envelope("v1", "Namespace", b"", _ld(3, b"gzip")), "contentEncoding")


def test_bad_raw_extension():
    raw = _ld(2, _ld(1, b"{not json"))  # ControllerRevision.data
    _expect_400(envelope("apps/v1", "ControllerRevision", raw), "neither JSON nor protobuf")


def test_deep_nesting_is_bounded():
    raw = b""
    for _ in range(200):  # envelopes nested through RawExtension
        raw = envelope("apps/v1", "ControllerRevision", _ld(2, _ld(1, raw or b"{}")))
    _expect_400(raw, "depth")


def test_truncations_and_corruptions_never_crash():
    rng = random.Random(1234)
    for name in CASES:
        body, _ = load(name)
        for cut in range(len(body)):
            try:
                protobuf.decode(body[:cut])
            except ApiError as e:
                assert e.code == 400
        for _ in range(50):
            corrupted = bytearray(body)
            for _ in range(rng.randint(1, 3)):
                corrupted[rng.randrange(4, len(body))] = rng.randrange(256)
            try:
                protobuf.decode(bytes(corrupted))
            except ApiError as e:
                assert e.code == 400


# --- the generated table ---

def test_every_served_kind_has_a_message():
    from kubelite.api.resources import BUILTIN

    # kubectl's typed clients never send CRDs (apiextensions) as protobuf
    wanted = {(rt.api_version, rt.kind) for rt in BUILTIN if rt.group != "apiextensions.k8s.io"} | {
        ("authentication.k8s.io/v1", k) for k in ("TokenRequest", "TokenReview", "SelfSubjectReview")} | {
        ("authorization.k8s.io/v1", k) for k in ("SelfSubjectAccessReview", "SelfSubjectRulesReview",
                                                 "SubjectAccessReview", "LocalSubjectAccessReview")} | {
        ("autoscaling/v1", "Scale"), ("policy/v1", "Eviction"), ("v1", "Binding")}
    # stored-only kinds no kubectl command creates through a typed (protobuf) client
    never_protobuf = {("autoscaling/v2", "HorizontalPodAutoscaler"), ("node.k8s.io/v1", "RuntimeClass")} | {
        ("admissionregistration.k8s.io/v1", k) for k in (
            "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding")} | {
        ("flowcontrol.apiserver.k8s.io/v1", k) for k in ("FlowSchema", "PriorityLevelConfiguration")}
    assert wanted - never_protobuf - set(KINDS) == set()


def test_json_names_match_openapi_definitions():
    from kubelite.api import schemas

    defs = schemas.definitions()
    checked = 0
    for message, table in MESSAGES.items():
        prefix = "io.k8s.apimachinery.pkg." if message.startswith(("apis.", "api.", "util.", "runtime.")) \
            else "io.k8s.api."
        definition = defs.get(prefix + message)
        if definition is None:
            continue
        props = definition.get("properties", {})
        for json_name, kind, flags in table.values():
            if flags & INLINE:
                assert {spec[0] for spec in MESSAGES[kind].values()} <= set(props), (message, json_name)
            else:
                assert json_name in props, (message, json_name)
            checked += 1
    assert checked > 1400


def test_known_field_numbers():
    # spot checks against upstream generated.proto (kubectl-wire.md §2.3)
    meta = MESSAGES["apis.meta.v1.ObjectMeta"]
    assert (meta[1][0], meta[3][0], meta[6][0], meta[11][0], meta[12][0], meta[14][0]) == (
        "name", "namespace", "resourceVersion", "labels", "annotations", "finalizers")
    spec = MESSAGES["authentication.v1.TokenRequestSpec"]
    assert spec[1][0] == "audiences" and spec[3][0] == "boundObjectRef" and spec[4] == ("expirationSeconds", "int64", 2)
    attrs = MESSAGES["authorization.v1.ResourceAttributes"]
    assert [attrs[i][0] for i in range(1, 8)] == [
        "namespace", "verb", "group", "version", "resource", "subresource", "name"]
