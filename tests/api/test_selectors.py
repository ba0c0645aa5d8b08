"""Label and field selectors: syntax, normal form, matching, per-kind fields and upstream's error messages."""

from __future__ import annotations

import pytest

from kubelite.api.errors import ApiError
from kubelite.api.resources import Registry, ResourceType
from kubelite.api.selectors import (
    format_label_selector,
    format_labels,
    label_selector_from_dict,
    label_selector_to_string,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
)

REG = Registry()


def rt(resource: str, group: str = "") -> ResourceType:
    for t in REG:
        if t.resource == resource and t.group == group:
            return t
    raise KeyError(resource)


def bad_label(text: str) -> str:
    with pytest.raises(ApiError) as e:
        parse_label_selector(text)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    return e.value.message


def bad_field(text: str, resource: str = "pods", group: str = "") -> str:
    with pytest.raises(ApiError) as e:
        parse_field_selector(text, rt(resource, group))
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    return e.value.message


# ------------------------------------------------------------------ label selector syntax

@pytest.mark.parametrize("text,normal", [
    ("", ""),
    ("app=web", "app=web"),
    ("app==web", "app==web"),
    ("tier!=cache", "tier!=cache"),
    ("env in (prod, dev)", "env in (dev,prod)"),
    ("env notin (qa)", "env notin (qa)"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("!canary", "!canary"),
    ("  b=1 , a ", "a,b=1"),
    ("app.kubernetes.io/name=nginx", "app.kubernetes.io/name=nginx"),
    ("count>5,count<10", "count>5,count<10"),
    ("x in (in,notin)", "x in (in,notin)"),
    ("a=", "a="),
])
def test_label_selector_normal_form(text, normal):
    assert str(parse_label_selector(text)) == normal


def test_label_selector_matching():
    s = parse_label_selector("app=web,tier!=cache,env in (prod,dev),!canary,track")
    assert s.matches({"app": "web", "env": "prod", "track": "stable"})
    assert s.matches({"app": "web", "env": "dev", "track": "", "tier": "front"})
    assert not s.matches({"app": "web", "env": "prod", "track": "x", "tier": "cache"})
    assert not s.matches({"app": "web", "env": "qa", "track": "x"})
    assert not s.matches({"app": "web", "env": "prod", "track": "x", "canary": "true"})
    assert not s.matches({"app": "web", "env": "prod"})
    assert not s.matches(None)
    notin = parse_label_selector("env notin (prod)")
    assert notin.matches({}) and notin.matches({"env": "dev"}) and not notin.matches({"env": "prod"})
    assert parse_label_selector("").matches(None) and parse_label_selector("").empty()
    assert parse_label_selector("a=").matches({"a": ""}) and not parse_label_selector("a=").matches({})


def test_label_selector_numeric_comparisons():
    gt = parse_label_selector("replicas>3")
    assert gt.matches({"replicas": "4"}) and not gt.matches({"replicas": "3"})
    assert not gt.matches({"replicas": "four"}) and not gt.matches({})
    lt = parse_label_selector("n<2")
    assert lt.matches({"n": "-3"}) and not lt.matches({"n": "2"})
    # the value is still a label value, so a negative bound is rejected as upstream rejects it
    assert 'Invalid value: "-2"' in bad_label("n<-2")


def test_label_selector_exact_match_introspection():
    s = parse_label_selector("app=web,env in (prod),tier in (a,b),!x")
    assert s.requires_exact_match("app") == "web"
    assert s.requires_exact_match("env") == "prod"
    assert s.requires_exact_match("tier") is None
    assert s.requires_exact_match("x") is None
    assert s.requires_exact_match("missing") is None


_NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def test_label_selector_errors_carry_upstream_messages():
    assert bad_label("app:monolith") == f'unable to parse requirement: <nil>: Invalid value: "app:monolith": {_NAME_PART}'
    assert bad_label("component+kube-apiserver,tier").startswith(
        'unable to parse requirement: <nil>: Invalid value: "component+kube-apiserver": name part must consist')
    assert bad_label("a=b$") == (
        'unable to parse requirement: values[0][a]: Invalid value: "b$": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    assert bad_label("app.kubernetes_io/name=x") == (
        'unable to parse requirement: <nil>: Invalid value: "app.kubernetes_io/name": prefix part a lowercase RFC '
        "1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
        "an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    assert bad_label("x" * 64).endswith("name part must be no more than 63 characters")
    assert bad_label("a in b") == "unable to parse requirement: found 'b' expected: '('"
    assert bad_label("a b") == "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    assert bad_label("a in (b c)") == "unable to parse requirement: found 'c', expected: ',' or ')'"
    assert bad_label("a>b") == ('unable to parse requirement: values[0]: Invalid value: "b": '
                                "for 'Gt', 'Lt' operators, the value must be an integer")
    assert bad_label("a,") == "found '', expected: identifier after ','"
    assert bad_label("=b") == "found '=', expected: !, identifier, or 'end of string'"
    assert bad_label("a=b c") == "found 'c', expected: ',' or 'end of string'"
    assert bad_label("!") == "unable to parse requirement: found '', expected: identifier"


# ------------------------------------------------------------------ metav1.LabelSelector

def test_label_selector_from_dict_and_string_forms():
    sel = {"matchLabels": {"app": "nginx", "a": "b"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]},
                                {"key": "env", "operator": "NotIn", "values": ["qa"]},
                                {"key": "track", "operator": "Exists"},
                                {"key": "canary", "operator": "DoesNotExist"}]}
    s = label_selector_from_dict(sel)
    assert str(s) == "a=b,app=nginx,!canary,env notin (qa),tier in (api,web),track"
    assert label_selector_to_string(sel) == str(s)
    assert s.matches({"a": "b", "app": "nginx", "tier": "web", "track": "1"})
    assert not s.matches({"a": "b", "app": "nginx", "tier": "web", "track": "1", "canary": "y"})
    # nil selects nothing, empty selects everything
    assert not label_selector_from_dict(None).matches({"a": "b"})
    assert label_selector_from_dict({}).matches({"a": "b"})
    assert label_selector_to_string(None) == "" and label_selector_to_string({}) == ""
    assert format_label_selector({}) == "<none>"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}) == "<error>"
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2" and format_labels(None) == "<none>"


def test_label_selector_from_dict_errors():
    with pytest.raises(ApiError) as e:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
    assert e.value.message == '"Gt" is not a valid label selector operator'
    with pytest.raises(ApiError) as e:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert e.value.message == ("values: Invalid value: []string{}: for 'in', 'notin' operators, "
                               "values set can't be empty")
    with pytest.raises(ApiError) as e:
        label_selector_from_dict({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert "values set must be empty for exists and does not exist" in e.value.message


# ------------------------------------------------------------------ field selectors

def _pod(**status) -> dict:
    return {"metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "default", "hostNetwork": False},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}], **status}}


def test_field_selector_on_pods():
    p = _pod()
    pods = rt("pods")
    assert parse_field_selector("status.phase=Running,spec.nodeName=node-1", pods).matches(p)
    assert parse_field_selector("spec.nodeName==node-1", pods).matches(p)
    assert not parse_field_selector("spec.nodeName!=node-1", pods).matches(p)
    assert parse_field_selector("status.phase!=Pending", pods).matches(p)
    assert parse_field_selector("spec.hostNetwork=false", pods).matches(p)
    assert parse_field_selector("status.podIP=10.0.0.5", pods).matches(p)
    assert parse_field_selector("spec.nodeName=", pods).matches({"metadata": {"name": "x"}, "spec": {}})
    assert parse_field_selector("status.nominatedNodeName=", pods).matches(p)
    assert parse_field_selector("", pods).empty()
    # the v1 alias spec.host means spec.nodeName
    assert parse_field_selector("spec.host=node-1", pods).matches(p)
    assert selectable_fields(pods, p)["spec.serviceAccountName"] == "default"


def test_field_selector_requirements_narrow_storage_scans():
    s = parse_field_selector("metadata.namespace=default,metadata.name=web-1,status.phase!=Failed", rt("pods"))
    assert s.name == "web-1" and s.namespace == "default"
    assert [(r.field, r.operator, r.value) for r in s.requirements()] == [
        ("metadata.name", "=", "web-1"), ("metadata.namespace", "=", "default"), ("status.phase", "!=", "Failed")]
    neg = parse_field_selector("metadata.name!=web-1", rt("pods"))
    assert neg.name is None and neg.namespace is None


def test_field_selector_escaping():
    pods = rt("pods")
    s = parse_field_selector(r"metadata.name=a\,b\=c\\d", pods)
    assert s.name == "a,b=c\\d"
    assert str(s) == r"metadata.name=a\,b\=c\\d"
    assert bad_field("metadata.name=a=b") == "invalid field selector: unescaped character in value: 61"
    assert bad_field(r"metadata.name=a\x") == "invalid field selector: invalid escape sequence: \\x"
    assert bad_field("metadata.name=a\\") == "invalid field selector: invalid escape sequence: \\"


def test_field_selector_syntax_and_unsupported_field_messages():
    assert bad_field("status.phase") == "invalid selector: 'status.phase'; can't understand 'status.phase'"
    assert bad_field("spec.foo=bar") == "field label not supported: spec.foo"
    assert bad_field("metadata.namespace=x", "nodes") == "field label not supported: metadata.namespace"
    assert bad_field("status.replicas=1", "deployments", "apps") == \
        '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'
    assert bad_field("spec.x=1", "jobs", "batch") == 'field label "spec.x" not supported for Job'
    assert bad_field("data.x=1", "configmaps") == \
        '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"'


def test_field_selectors_per_kind():
    ev = {"metadata": {"name": "e", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": "u1"},
          "reason": "Pulled", "type": "Normal", "source": {"component": "kubelet"}}
    events = rt("events")
    assert parse_field_selector("involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u1",
                                events).matches(ev)
    assert parse_field_selector("source=kubelet,type=Normal,reason=Pulled", events).matches(ev)
    assert parse_field_selector("source=ctrl", events).matches({"reportingComponent": "ctrl"})
    v1 = {"metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "web"}, "reportingController": "kubelet"}
    events_v1 = rt("events", "events.k8s.io")
    assert parse_field_selector("regarding.name=web,reportingController=kubelet", events_v1).matches(v1)
    assert bad_field("involvedObject.name=web", "events", "events.k8s.io") == \
        "field label not supported: involvedObject.name"

    assert parse_field_selector("type=kubernetes.io/tls", rt("secrets")).matches({"type": "kubernetes.io/tls"})
    assert parse_field_selector("spec.unschedulable=true", rt("nodes")).matches({"spec": {"unschedulable": True}})
    assert parse_field_selector("spec.unschedulable=false", rt("nodes")).matches({"spec": {}})
    assert parse_field_selector("status.phase=Active", rt("namespaces")).matches({"status": {"phase": "Active"}})
    assert parse_field_selector("status.replicas=0", rt("replicasets", "apps")).matches({"status": {}})
    assert parse_field_selector("status.replicas=2", rt("replicationcontrollers")).matches(
        {"status": {"replicas": 2}})
    assert parse_field_selector("status.successful=1", rt("jobs", "batch")).matches({"status": {"succeeded": 1}})
    svc = {"spec": {"type": "ClusterIP", "clusterIP": "None"}}
    assert parse_field_selector("spec.clusterIP=None,spec.type=ClusterIP", rt("services")).matches(svc)
    assert parse_field_selector("metadata.name=cm", rt("configmaps")).matches({"metadata": {"name": "cm"}})


def test_field_selectors_on_custom_resources():
    crd = ResourceType("example.com", "v1", "widgets", "Widget", True, "/registry/example.com/widgets/",
                       extra={"selectableFields": [{"jsonPath": ".spec.color"}]})
    w = {"metadata": {"name": "w", "namespace": "ns"}, "spec": {"color": "blue"}}
    assert parse_field_selector("spec.color=blue,metadata.namespace=ns", crd).matches(w)
    with pytest.raises(ApiError) as e:
        parse_field_selector("spec.size=1", crd)
    assert e.value.message == "field label not supported: spec.size"
    cluster = ResourceType("example.com", "v1", "gadgets", "Gadget", False, "/registry/example.com/gadgets/")
    with pytest.raises(ApiError):
        parse_field_selector("metadata.namespace=x", cluster)
