"""Schema-driven validation: every built-in kind gets nulls, types, int ranges and nested required fields checked."""

from __future__ import annotations

import pytest

from kubelite.api import validation
from kubelite.api.defaults import apply_defaults
from kubelite.api.errors import ApiError
from kubelite.api.resources import BUILTIN
from kubelite.api.validation_schema import conform


def rt_of(group: str, kind: str):
    return next(rt for rt in BUILTIN if rt.group == group and rt.kind == kind)


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
            "spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Always",
                     "dnsPolicy": "ClusterFirst", **spec}}


def causes(rt, obj, old=None) -> list[str]:
    apply_defaults(rt, obj)  # as the server does before validating
    try:
        validation.validate(rt, obj, old)
    except ApiError as e:
        return [f"{c['field']}: {c['message']}" for c in e.details["causes"]]
    return []


def test_null_owner_reference_is_a_zero_struct_with_upstreams_messages():
    p = pod()
    p["metadata"]["ownerReferences"] = [None]
    got = causes(rt_of("", "Pod"), p)
    assert got == ['metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
                   'metadata.ownerReferences.kind: Invalid value: "": must not be empty',
                   'metadata.ownerReferences.name: Invalid value: "": must not be empty',
                   'metadata.ownerReferences.uid: Invalid value: "": must not be empty']
    assert p["metadata"]["ownerReferences"] == [{}]  # Go decoding's zero value


def test_two_controller_owner_references():
    p = pod()
    ref = {"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1", "controller": True}
    p["metadata"]["ownerReferences"] = [ref, dict(ref, name="b", uid="2")]
    assert any('Only one reference can have Controller set to true. Found "true" in references for X/a and X/b'
               in c for c in causes(rt_of("", "Pod"), p))


def test_readiness_gates_tolerations_and_ephemeral_containers():
    rt = rt_of("", "Pod")
    got = causes(rt, pod(readinessGates=[None]))
    assert got[0].startswith('spec.readinessGates[0].conditionType: Invalid value: ""')
    got = causes(rt, pod(tolerations=[None]))
    assert got == ['spec.tolerations[0].operator: Invalid value: "": operator must be Exists when `key` is empty, '
                   'which means "match all values and all keys"']
    got = causes(rt, pod(tolerations=[{"key": "k", "operator": "Equal", "effect": "1Gi"}]))
    assert got == ['spec.tolerations[0].effect: Unsupported value: "1Gi": supported values: '
                   '"NoExecute", "NoSchedule", "PreferNoSchedule"']
    assert causes(rt, pod(tolerations=[{"operator": "Exists"}])) == []
    got = causes(rt, pod(ephemeralContainers=[{"name": "e", "image": "x"}]))
    assert got == ["spec.ephemeralContainers: Forbidden: cannot be set on create"]


def test_node_taints():
    rt = rt_of("", "Node")
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"taints": [{"effect": "1Gi"}]}}
    got = causes(rt, node)
    assert 'spec.taints[0].effect: Unsupported value: "1Gi": supported values: "NoExecute", "NoSchedule", ' \
           '"PreferNoSchedule"' in got
    assert any(c.startswith('spec.taints[0].key: Invalid value: ""') for c in got)
    node["spec"]["taints"] = [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}]
    assert any("taints must be unique by key and effect pair" in c for c in causes(rt, node))
    node["spec"]["taints"] = [None]
    assert "spec.taints[0].effect: Required value" in causes(rt, node)


def test_int32_range_wrong_types_and_nested_required():
    rt = rt_of("apps", "Deployment")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
           "spec": {"replicas": 2**31, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod()["spec"]}}}
    assert "spec.replicas: Invalid value: 2147483648: must be less than or equal to 2147483647" in causes(rt, dep)
    dep["spec"]["replicas"] = "3"
    assert 'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"' \
        in causes(rt, dep)
    dep["spec"]["replicas"] = 1
    dep["spec"]["selector"]["matchExpressions"] = [None]
    got = causes(rt, dep)  # the per-kind rule speaks for the field, in upstream's words
    assert 'spec.selector.matchExpressions[0].operator: Invalid value: "": not a valid selector operator' in got
    rt = rt_of("", "Service")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
           "spec": {"ports": [{"port": 80}], "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 2**40}}}}
    assert ("spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 1099511627776: must be less than "
            "or equal to 2147483647") in causes(rt, svc)
    svc["spec"]["ports"] = [{"port": 80}, None]
    assert any(c.startswith("spec.ports[1].port: Invalid value: 0") for c in causes(rt, svc))


def test_nulls_become_zero_values_and_absent_fields():
    rt = rt_of("", "ConfigMap")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n", "labels": None},
          "data": {"a": None}, "immutable": None}
    assert conform(rt, cm) == []
    assert cm == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"},
                  "data": {"a": ""}}


def test_cluster_role_selectors_of_null_or_empty_are_accepted_as_upstream():
    rt = rt_of("rbac.authorization.k8s.io", "ClusterRole")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"},
            "aggregationRule": {"clusterRoleSelectors": [None, {}]}}
    assert causes(rt, role) == []
    assert role["aggregationRule"]["clusterRoleSelectors"] == [{}, {}]


@pytest.mark.parametrize("status", [{"containerStatuses": [{"name": "c"}]}, {"conditions": [{"type": "Ready"}]}])
def test_status_required_keys_are_not_enforced(status):
    p = pod()
    p["status"] = status
    assert causes(rt_of("", "Pod"), p) == []
