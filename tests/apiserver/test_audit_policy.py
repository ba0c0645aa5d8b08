"""The audit Policy: rule matching in order, levels, stages, omitManagedFields, validation."""

from __future__ import annotations

import pytest

from kubelite.apiserver.audit import attributes
from kubelite.apiserver.audit_policy import Attributes, load_policy, parse_policy
from kubelite.apiserver.authn import UserInfo
from kubelite.apiserver.request_info import parse

ALICE = UserInfo("alice", ["dev", "system:authenticated"])
NODE = UserInfo("system:node:n1", ["system:nodes", "system:authenticated"])


def policy(*rules, **top):
    return parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top})


def res(verb, resource, namespace="", name="", subresource="", group=""):
    return Attributes(verb, True, "", group, namespace, resource, subresource, name)


def test_first_matching_rule_decides_and_no_match_is_none():
    p = policy({"level": "None", "users": ["system:kube-proxy"]},
               {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets"]}]},
               {"level": "RequestResponse", "verbs": ["create"]})
    assert p.evaluate(UserInfo("system:kube-proxy"), res("get", "secrets")).level == "None"
    assert p.evaluate(ALICE, res("create", "secrets", "ns")).level == "Metadata"
    assert p.evaluate(ALICE, res("create", "pods", "ns")).level == "RequestResponse"
    assert p.evaluate(ALICE, res("get", "pods", "ns")).level == "None"


def test_users_groups_and_unauthenticated():
    p = policy({"level": "Request", "userGroups": ["system:nodes"]}, {"level": "Metadata", "users": ["alice"]})
    assert p.evaluate(NODE, res("get", "pods")).level == "Request"
    assert p.evaluate(ALICE, res("get", "pods")).level == "Metadata"
    assert p.evaluate(None, res("get", "pods")).level == "None"  # failed authentication has no user


def test_resources_subresources_and_names():
    p = policy({"level": "RequestResponse", "resources": [{"group": "", "resources": ["pods/log"]}]},
               {"level": "Request", "resources": [{"group": "", "resources": ["*/status"]}]},
               {"level": "Metadata", "resources": [{"group": "", "resources": ["configmaps"],
                                                    "resourceNames": ["controller-leader"]}]},
               {"level": "None", "resources": [{"group": "apps", "resources": ["deployments/*"]}]},
               {"level": "Metadata", "resources": [{"group": "apps"}]})
    assert p.evaluate(ALICE, res("get", "pods", "ns", "p", "log")).level == "RequestResponse"
    assert p.evaluate(ALICE, res("get", "pods", "ns", "p")).level == "None"
    assert p.evaluate(ALICE, res("update", "nodes", "", "n", "status")).level == "Request"
    assert p.evaluate(ALICE, res("get", "configmaps", "ns", "controller-leader")).level == "Metadata"
    assert p.evaluate(ALICE, res("get", "configmaps", "ns", "other")).level == "None"
    assert p.evaluate(ALICE, res("patch", "deployments", "ns", "d", "scale", "apps")).level == "None"
    assert p.evaluate(ALICE, res("get", "statefulsets", "ns", "s", group="apps")).level == "Metadata"


def test_namespaces_and_non_resource_urls():
    p = policy({"level": "None", "nonResourceURLs": ["/healthz*", "/version"]},
               {"level": "Request", "namespaces": ["kube-system"]},
               {"level": "Metadata"})
    assert p.evaluate(ALICE, Attributes("get", False, "/healthz/etcd")).level == "None"
    assert p.evaluate(ALICE, Attributes("get", False, "/version")).level == "None"
    assert p.evaluate(ALICE, Attributes("get", False, "/api")).level == "Metadata"
    assert p.evaluate(ALICE, res("get", "pods", "kube-system")).level == "Request"
    assert p.evaluate(ALICE, res("get", "nodes")).level == "Metadata"
    # a namespaces rule never matches a non-resource request
    assert p.evaluate(ALICE, Attributes("get", False, "/metrics")).level == "Metadata"


def test_omit_stages_union_and_managed_fields_override():
    p = policy({"level": "Request", "omitStages": ["ResponseStarted"], "omitManagedFields": False,
                "verbs": ["update"]},
               {"level": "Request"}, omitStages=["RequestReceived"], omitManagedFields=True)
    d = p.evaluate(ALICE, res("update", "pods", "ns", "p"))
    assert d.omit_stages == {"RequestReceived", "ResponseStarted"} and d.omit_managed_fields is False
    d = p.evaluate(ALICE, res("get", "pods", "ns", "p"))
    assert d.omit_stages == {"RequestReceived"} and d.omit_managed_fields is True


def test_attributes_follow_upstreams_request_info():
    a = attributes(parse("POST", "/api/v1/namespaces/ns/pods/p/exec?command=ls"))
    assert (a.verb, a.resource, a.subresource, a.name, a.namespace) == ("create", "pods", "exec", "p", "ns")
    a = attributes(parse("GET", "/api/v1/namespaces/ns"))
    assert (a.resource, a.name, a.namespace) == ("namespaces", "ns", "ns")
    assert attributes(parse("POST", "/some/path")).verb == "post"  # non-resource verbs are HTTP methods
    assert attributes(parse("GET", "/api/v1/secrets", {"watch": "true"})).verb == "watch"


@pytest.mark.parametrize("doc, message", [
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []}, "loaded illegal policy with 0 rules"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Everything"}]},
     'rules[0].level: Unsupported value: "Everything"'),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "omitStages": ["Done"]}]},
     'rules[0].omitStages[0]: Unsupported value: "Done"'),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
      "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}]},
     "rules cannot apply to both regular resources and non-resource URLs"),
    ({"apiVersion": "audit.k8s.io/v1beta2", "kind": "Policy", "rules": [{"level": "None"}]},
     'no kind "Policy" is registered for version "audit.k8s.io/v1beta2"'),
])
def test_invalid_policies(doc, message):
    with pytest.raises(ValueError) as e:
        parse_policy(doc, "p.yaml")
    assert message in str(e.value)


def test_load_policy_from_yaml(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    assert load_policy(str(path)).evaluate(ALICE, res("get", "pods")).level == "Metadata"
