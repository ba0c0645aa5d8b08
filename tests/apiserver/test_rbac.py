"""RBAC rule matching, subjects, escalation coverage, messages and the bootstrap policy, without a server."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubelite.apiserver import rbac_bootstrap
from kubelite.apiserver.authn import UserInfo
from kubelite.apiserver.authz import Authorization, attributes, forbidden_for, parse_modes
from kubelite.apiserver.rbac import Attrs, RBACAuthorizer, aggregated_rules, rule_allows
from kubelite.apiserver.rbac_escalation import compact, compact_string, confirm_no_escalation, covers
from kubelite.apiserver.request_info import parse

G = "rbac.authorization.k8s.io"


def role(name, rules, ns="", labels=None, aggregation=None):
    obj = {"kind": "Role" if ns else "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
           "rules": rules}
    if ns:
        obj["metadata"]["namespace"] = ns
    if aggregation:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": aggregation}]}
    return obj


def binding(name, role_kind, role_name, subjects, ns=""):
    obj = {"kind": "RoleBinding" if ns else "ClusterRoleBinding", "metadata": {"name": name},
           "roleRef": {"apiGroup": G, "kind": role_kind, "name": role_name}, "subjects": subjects}
    if ns:
        obj["metadata"]["namespace"] = ns
    return obj


def load(authz: RBACAuthorizer, *objs):
    rev = 1
    for o in objs:
        rev += 1
        kind, meta = o["kind"], o["metadata"]
        prefix = {"Role": "roles", "ClusterRole": "clusterroles", "RoleBinding": "rolebindings",
                  "ClusterRoleBinding": "clusterrolebindings"}[kind]
        key = f"/registry/{prefix}/" + (f"{meta['namespace']}/" if meta.get("namespace") else "") + meta["name"]
        authz.observe(key, o, rev)


def res(verb, resource, ns="", name="", group="", sub=""):
    return Attrs(verb, True, group, "v1", ns, resource, sub, name)


ALICE = UserInfo("alice", ["dev", "system:authenticated"])


def test_resource_names_do_not_allow_list():
    rule = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}
    assert rule_allows(res("get", "secrets", "ns", "a"), rule)
    assert not rule_allows(res("get", "secrets", "ns", "b"), rule)
    assert not rule_allows(res("list", "secrets", "ns"), rule)


def test_wildcards_and_subresources():
    star = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    assert rule_allows(res("delete", "widgets", group="example.com"), star)
    assert rule_allows(res("get", "pods", sub="log"), star)
    scale = {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]}
    assert rule_allows(res("get", "deployments", group="apps", sub="scale"), scale)
    assert not rule_allows(res("get", "deployments", group="apps"), scale)
    pods = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    assert not rule_allows(res("get", "pods", sub="log"), pods)
    assert not rule_allows(res("get", "pods", group="apps"), pods)


def test_non_resource_urls():
    rule = {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}
    assert rule_allows(Attrs("get", False, path="/healthz"), rule)
    assert rule_allows(Attrs("get", False, path="/apis/apps/v1"), rule)
    assert not rule_allows(Attrs("get", False, path="/healthz/etcd"), rule)
    assert not rule_allows(Attrs("post", False, path="/healthz"), rule)
    assert not rule_allows(res("get", "pods"), rule)


def test_subjects_and_rolebinding_to_clusterrole_is_namespaced():
    a = RBACAuthorizer()
    load(a, role("reader", [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
         binding("rb", "ClusterRole", "reader", [{"kind": "ServiceAccount", "name": "robot"}], ns="team"),
         binding("grp", "ClusterRole", "reader", [{"kind": "Group", "apiGroup": G, "name": "dev"}], ns="devs"))
    robot = UserInfo("system:serviceaccount:team:robot", ["system:serviceaccounts"])
    assert a.authorize(robot, res("get", "secrets", "team", "x"))[0]
    assert not a.authorize(robot, res("get", "secrets", "other", "x"))[0]
    assert not a.authorize(robot, res("get", "secrets", "", "x"))[0]
    allowed, reason = a.authorize(ALICE, res("get", "secrets", "devs", "x"))
    assert allowed and reason == 'RBAC: allowed by RoleBinding "grp/devs" of ClusterRole "reader" to Group "dev"'
    assert a.authorize(robot, res("get", "secrets", "team", "x"))[1] == (
        'RBAC: allowed by RoleBinding "rb/team" of ClusterRole "reader" to ServiceAccount "robot/team"')


def test_cache_is_dropped_on_change_and_missing_role_reason():
    a = RBACAuthorizer()
    load(a, binding("b", "ClusterRole", "gone", [{"kind": "User", "name": "alice"}]))
    allowed, reason = a.authorize(ALICE, res("list", "pods"))
    assert not allowed and reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'
    a.observe("/registry/clusterroles/gone", role("gone", [{"verbs": ["list"], "apiGroups": [""],
                                                            "resources": ["pods"]}]), 100)
    assert a.authorize(ALICE, res("list", "pods"))[0]
    a.observe("/registry/clusterroles/gone", None, 101)
    assert not a.authorize(ALICE, res("list", "pods"))[0]
    a.observe("/registry/clusterroles/gone", role("gone", []), 99)  # older than what we hold: ignored
    assert "gone" not in a.cluster_roles


def test_forbidden_messages_word_for_word():
    anon = UserInfo("system:anonymous", ["system:unauthenticated"])
    e = forbidden_for(anon, parse("GET", "/api/v1/secrets"))
    assert e.code == 403 and e.message == ('secrets is forbidden: User "system:anonymous" cannot list resource '
                                           '"secrets" in API group "" at the cluster scope')
    e = forbidden_for(ALICE, parse("GET", "/apis/apps/v1/namespaces/ns1/deployments/web/scale"))
    assert e.message == ('deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" '
                         'in API group "apps" in the namespace "ns1"')
    assert forbidden_for(anon, parse("GET", "/foo")).message == 'forbidden: User "system:anonymous" cannot get path "/foo"'
    e = forbidden_for(ALICE, parse("GET", "/api/v1/namespaces/kube-system"))
    assert e.message == ('namespaces "kube-system" is forbidden: User "alice" cannot get resource "namespaces" '
                         'in API group "" in the namespace "kube-system"')
    e = forbidden_for(ALICE, parse("GET", "/api/v1/namespaces/a/secrets/s"), "no relationship found")
    assert e.message.endswith('in the namespace "a": no relationship found')


def test_escalation_coverage_and_message():
    a = RBACAuthorizer()
    load(a, role("mine", [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]},
                          {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]),
         binding("b", "ClusterRole", "mine", [{"kind": "User", "name": "alice"}]))
    owner, _ = a.rules_for(ALICE, "ns")
    assert covers(owner, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "services/status"]}]) == []
    assert covers(owner, [{"verbs": ["get"], "nonResourceURLs": ["/logs/a/b"]}]) == []
    missing = covers(owner, [{"verbs": ["get", "delete", "watch"], "apiGroups": [""], "resources": ["pods", "secrets"]}])
    assert len(missing) == 5
    text = sorted(compact_string(r) for r in compact(missing))
    assert text == ['{APIGroups:[""], Resources:["pods"], Verbs:["delete" "watch"]}',
                    '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "watch"]}']
    msg = confirm_no_escalation(a, ALICE, "ns", [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                                                  "resourceNames": ["x"]}])
    assert msg == ('user "alice" (groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not '
                   'currently held:\n{APIGroups:[""], Resources:["secrets"], ResourceNames:["x"], Verbs:["get"]}')


def test_aggregation_picks_labelled_roles_in_name_order():
    a = RBACAuthorizer()
    r1 = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    r2 = {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}
    load(a, role("z-extra", [r2, r1], labels={"agg": "yes"}), role("a-base", [r1], labels={"agg": "yes"}),
         role("other", [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]))
    agg = role("combined", [], aggregation={"agg": "yes"})
    assert aggregated_rules(a, agg) == [r1, r2]


def test_parse_modes():
    assert parse_modes("Node,RBAC") == ["Node", "RBAC"]
    with pytest.raises(ValueError, match='authorization-mode "ABAC" is not a valid mode'):
        parse_modes("ABAC")
    with pytest.raises(ValueError):
        parse_modes("RBAC,RBAC")


def test_bootstrap_policy_shape():
    names = {r["metadata"]["name"] for r in rbac_bootstrap.cluster_roles()}
    for wanted in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                   "system:public-info-viewer", "system:node", "system:node-proxier", "system:kube-scheduler",
                   "system:kube-controller-manager", "system:monitoring", "system:controller:namespace-controller",
                   "system:controller:clusterrole-aggregation-controller"):
        assert wanted in names
    bindings = {b["metadata"]["name"]: b for b in rbac_bootstrap.cluster_role_bindings()}
    assert bindings["system:node"]["subjects"] == []  # the Node authorizer serves nodes
    assert [s["name"] for s in bindings["system:discovery"]["subjects"]] == ["system:authenticated"]
    assert [s["name"] for s in bindings["system:public-info-viewer"]["subjects"]] == [
        "system:authenticated", "system:unauthenticated"]
    for r in rbac_bootstrap.cluster_roles():
        assert r["metadata"]["annotations"][rbac_bootstrap.AUTOUPDATE] == "true"


def test_masters_bypass_and_union_reasons():
    authz = Authorization(["RBAC"])
    root = UserInfo("kubernetes-admin", ["system:masters", "system:authenticated"])
    assert asyncio.run(authz.authorize(root, parse("DELETE", "/api/v1/namespaces/x/secrets/y"))) == (True, "")
    assert asyncio.run(authz.authorize(ALICE, parse("GET", "/api/v1/pods"))) == (False, "")
    assert attributes(parse("POST", "/logs")).verb == "post"


def test_decision_cache_is_cheap_with_200_bindings():
    a = RBACAuthorizer()
    objs = [role("r", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])]
    for i in range(200):
        objs.append(binding(f"b{i}", "ClusterRole", "r", [{"kind": "User", "name": f"user{i}"}], ns=f"ns{i % 20}"))
    load(a, *objs)
    user = UserInfo("user7", ["system:authenticated"])
    attrs = res("get", "pods", "ns7", "p")
    assert a.authorize(user, attrs)[0]
    started = time.perf_counter()
    for _ in range(10000):
        a.authorize(user, attrs)
    per_call = (time.perf_counter() - started) / 10000
    assert per_call < 0.0001  # 100 µs, far above what it takes; catches a cache that never hits
