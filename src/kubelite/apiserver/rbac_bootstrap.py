"""The default RBAC policy every cluster starts with (upstream's bootstrap policy, v1.33), and its reconciliation.

Roles are written in a compact notation of our own: `_r(verbs, groups, resources, names)` where each argument is
a space-separated list and the core group is spelled `core`; `_u(verbs, urls)` is a non-resource rule.
At start the policy is reconciled as upstream's `rbac/bootstrap-roles` post-start hook does: missing objects
are created; existing ones that carry `rbac.authorization.kubernetes.io/autoupdate: "true"` get missing rules
(and, for bindings, missing subjects) added; nothing is ever removed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from . import codec
from .context import ApiContext

log = logging.getLogger("kubelite.apiserver.rbac")

GROUP = "rbac.authorization.k8s.io"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}

READ = "get list watch"
WRITE = "create delete deletecollection patch update"
ALL_RW = "create delete deletecollection get list patch update watch"
EVENTS = ("create patch update", "core events.k8s.io", "events")


def _split(text: str) -> list[str]:
    return ["" if g == "core" else g for g in text.split()]


def _r(verbs: str, groups: str, resources: str, names: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"verbs": verbs.split(), "apiGroups": _split(groups), "resources": resources.split()}
    if names:
        rule["resourceNames"] = names.split()
    return rule


def _u(verbs: str, urls: str) -> dict[str, Any]:
    return {"verbs": verbs.split(), "nonResourceURLs": urls.split()}


def _ev() -> dict[str, Any]:
    return _r(*EVENTS)


_AGG = "rbac.authorization.k8s.io/aggregate-to-"

# name -> (rules, extra labels, aggregation selector labels or None)
CLUSTER_ROLES: dict[str, tuple[list[dict[str, Any]], dict[str, str], list[dict[str, str]] | None]] = {
    "cluster-admin": ([_r("*", "*", "*"), _u("*", "*")], {}, None),
    "admin": ([], {}, [{_AGG + "admin": "true"}]),
    "edit": ([], {_AGG + "admin": "true"}, [{_AGG + "edit": "true"}]),
    "view": ([], {_AGG + "edit": "true"}, [{_AGG + "view": "true"}]),
    "system:aggregate-to-admin": ([
        _r("create", "authorization.k8s.io", "localsubjectaccessreviews"),
        _r(ALL_RW, GROUP, "rolebindings roles"),
    ], {_AGG + "admin": "true"}, None),
    "system:aggregate-to-edit": ([
        _r(READ, "core", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy"),
        _r("impersonate", "core", "serviceaccounts"),
        _r(WRITE, "core", "pods pods/attach pods/exec pods/portforward pods/proxy"),
        _r("create", "core", "pods/eviction"),
        _r(WRITE, "core", "configmaps events persistentvolumeclaims replicationcontrollers "
                          "replicationcontrollers/scale secrets serviceaccounts services services/proxy"),
        _r("create", "core", "serviceaccounts/token"),
        _r(WRITE, "apps", "daemonsets deployments deployments/rollback deployments/scale replicasets "
                          "replicasets/scale statefulsets statefulsets/scale"),
        _r(WRITE, "autoscaling", "horizontalpodautoscalers"),
        _r(WRITE, "batch", "cronjobs jobs"),
        _r(WRITE, "extensions", "daemonsets deployments deployments/rollback deployments/scale ingresses "
                                "networkpolicies replicasets replicasets/scale replicationcontrollers/scale"),
        _r(WRITE, "policy", "poddisruptionbudgets"),
        _r(WRITE, "networking.k8s.io", "ingresses networkpolicies"),
        _r(ALL_RW, "coordination.k8s.io", "leases"),
    ], {_AGG + "edit": "true"}, None),
    "system:aggregate-to-view": ([
        _r(READ, "core", "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
                         "replicationcontrollers replicationcontrollers/scale serviceaccounts services services/status"),
        _r(READ, "core", "bindings events limitranges namespaces/status pods/log pods/status "
                         "replicationcontrollers/status resourcequotas resourcequotas/status"),
        _r(READ, "core", "namespaces"),
        _r(READ, "discovery.k8s.io", "endpointslices"),
        _r(READ, "apps", "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
                         "deployments/status replicasets replicasets/scale replicasets/status statefulsets "
                         "statefulsets/scale statefulsets/status"),
        _r(READ, "autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status"),
        _r(READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
        _r(READ, "extensions", "daemonsets daemonsets/status deployments deployments/scale deployments/status "
                               "ingresses ingresses/status networkpolicies replicasets replicasets/scale "
                               "replicasets/status replicationcontrollers/scale"),
        _r(READ, "policy", "poddisruptionbudgets poddisruptionbudgets/status"),
        _r(READ, "networking.k8s.io", "ingresses ingresses/status networkpolicies"),
    ], {_AGG + "view": "true"}, None),
    "system:auth-delegator": ([
        _r("create", "authentication.k8s.io", "tokenreviews"),
        _r("create", "authorization.k8s.io", "subjectaccessreviews"),
    ], {}, None),
    "system:basic-user": ([
        _r("create", "authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews"),
        _r("create", "authentication.k8s.io", "selfsubjectreviews"),
    ], {}, None),
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": ([
        _r("create", "certificates.k8s.io", "certificatesigningrequests/nodeclient")], {}, None),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": ([
        _r("create", "certificates.k8s.io", "certificatesigningrequests/selfnodeclient")], {}, None),
    "system:certificates.k8s.io:kube-apiserver-client-approver": ([
        _r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client")], {}, None),
    "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver": ([
        _r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client-kubelet")], {}, None),
    "system:certificates.k8s.io:kubelet-serving-approver": ([
        _r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kubelet-serving")], {}, None),
    "system:certificates.k8s.io:legacy-unknown-approver": ([
        _r("approve", "certificates.k8s.io", "signers", "kubernetes.io/legacy-unknown")], {}, None),
    "system:discovery": ([
        _u("get", "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/"),
    ], {}, None),
    "system:heapster": ([
        _r(READ, "core", "events namespaces nodes pods"),
        _r(READ, "extensions", "deployments"),
    ], {}, None),
    "system:kube-aggregator": ([_r(READ, "core", "endpoints services")], {}, None),
    "system:kube-controller-manager": ([
        _ev(),
        _r("create", "coordination.k8s.io", "leases"),
        _r("get update", "coordination.k8s.io", "leases", "kube-controller-manager"),
        _r("create", "core", "secrets serviceaccounts"),
        _r("delete", "core", "secrets"),
        _r("get", "core", "configmaps namespaces secrets serviceaccounts"),
        _r("update", "core", "secrets serviceaccounts"),
        _r("create", "authentication.k8s.io", "tokenreviews"),
        _r("create", "authorization.k8s.io", "subjectaccessreviews"),
        _r("list watch", "*", "*"),
        _r("create", "core", "serviceaccounts/token"),
    ], {}, None),
    "system:kube-dns": ([_r("list watch", "core", "endpoints services")], {}, None),
    "system:kube-scheduler": ([
        _ev(),
        _r("create", "coordination.k8s.io", "leases"),
        _r("get update", "coordination.k8s.io", "leases", "kube-scheduler"),
        _r(READ, "core", "nodes"),
        _r("delete get list watch", "core", "pods"),
        _r("create", "core", "bindings pods/binding"),
        _r("patch update", "core", "pods/status"),
        _r(READ, "core", "replicationcontrollers services"),
        _r(READ, "apps extensions", "replicasets"),
        _r(READ, "apps", "statefulsets"),
        _r(READ, "policy", "poddisruptionbudgets"),
        _r(READ, "core", "persistentvolumeclaims persistentvolumes"),
        _r("create", "authentication.k8s.io", "tokenreviews"),
        _r("create", "authorization.k8s.io", "subjectaccessreviews"),
        _r(READ, "storage.k8s.io", "csinodes"),
        _r(READ, "core", "namespaces"),
        _r(READ, "storage.k8s.io", "csidrivers"),
        _r(READ, "storage.k8s.io", "csistoragecapacities"),
    ], {}, None),
    "system:kubelet-api-admin": ([
        _r(READ, "core", "nodes"),
        _r("proxy", "core", "nodes"),
        _r("*", "core", "nodes/log nodes/metrics nodes/proxy nodes/stats"),
    ], {}, None),
    "system:monitoring": ([
        _u("get", "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*"),
    ], {}, None),
    "system:node-bootstrapper": ([
        _r("create get list watch", "certificates.k8s.io", "certificatesigningrequests")], {}, None),
    "system:node-problem-detector": ([
        _r("get", "core", "nodes"),
        _r("patch", "core", "nodes/status"),
        _ev(),
    ], {}, None),
    "system:node-proxier": ([
        _r("list watch", "core", "endpoints services"),
        _r(READ, "core", "nodes"),
        _ev(),
        _r("list watch", "discovery.k8s.io", "endpointslices"),
    ], {}, None),
    "system:persistent-volume-provisioner": ([
        _r("create delete get list watch", "core", "persistentvolumes"),
        _r("get list update watch", "core", "persistentvolumeclaims"),
        _r(READ, "storage.k8s.io", "storageclasses"),
        _r("watch", "core", "events"),
        _ev(),
    ], {}, None),
    "system:public-info-viewer": ([_u("get", "/healthz /livez /readyz /version /version/")], {}, None),
    "system:service-account-issuer-discovery": ([
        _u("get", "/.well-known/openid-configuration /openid/v1/jwks")], {}, None),
    "system:volume-scheduler": ([
        _r("get list patch update watch", "core", "persistentvolumes"),
        _r(READ, "storage.k8s.io", "storageclasses"),
        _r("get list patch update watch", "core", "persistentvolumeclaims"),
    ], {}, None),
}

# What the Node authorizer lets every node do outside its graph checks (upstream's NodeRules), and the
# rules of the `system:node` ClusterRole, which since 1.8 is bound to nobody.
NODE_RULES: list[dict[str, Any]] = [
    _r("create", "authentication.k8s.io", "tokenreviews"),
    _r("create", "authorization.k8s.io", "localsubjectaccessreviews subjectaccessreviews"),
    _r(READ, "core", "services"),
    _r("create get list watch", "core", "nodes"),
    _r("patch update", "core", "nodes/status"),
    _r("patch update", "core", "nodes"),
    _r("create patch update", "core", "events"),
    _r(READ, "core", "pods"),
    _r("create delete", "core", "pods"),
    _r("patch update", "core", "pods/status"),
    _r("create", "core", "pods/eviction"),
    _r(READ, "core", "configmaps secrets"),
    _r("get", "core", "persistentvolumeclaims persistentvolumes"),
    _r("get", "core", "endpoints"),
    _r("create get list watch", "certificates.k8s.io", "certificatesigningrequests"),
    _r("create delete get patch update", "coordination.k8s.io", "leases"),
    _r("get", "storage.k8s.io", "volumeattachments"),
    _r("create", "core", "serviceaccounts/token"),
    _r("get patch update", "core", "persistentvolumeclaims/status"),
    _r(READ, "storage.k8s.io", "csidrivers"),
    _r("create delete get patch update", "storage.k8s.io", "csinodes"),
    _r(READ, "node.k8s.io", "runtimeclasses"),
]
CLUSTER_ROLES["system:node"] = (NODE_RULES, {}, None)

# The controllers' roles (kube-controller-manager with --use-service-account-credentials), bound to
# ServiceAccounts of the same name in kube-system.
CONTROLLER_ROLES: dict[str, list[dict[str, Any]]] = {
    "attachdetach-controller": [
        _r("list watch", "core", "persistentvolumeclaims persistentvolumes"),
        _r(READ, "core", "nodes"), _r("patch update", "core", "nodes/status"), _r("list watch", "core", "pods"),
        _ev(), _r("create delete get list watch", "storage.k8s.io", "volumeattachments"),
        _r(READ, "storage.k8s.io", "csidrivers"), _r(READ, "storage.k8s.io", "csinodes")],
    "certificate-controller": [
        _r("delete get list watch", "certificates.k8s.io", "certificatesigningrequests"),
        _r("update", "certificates.k8s.io",
           "certificatesigningrequests/approval certificatesigningrequests/status"),
        _r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client-kubelet"),
        _r("sign", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client "
           "kubernetes.io/kube-apiserver-client-kubelet kubernetes.io/kubelet-serving kubernetes.io/legacy-unknown"),
        _r("create", "authorization.k8s.io", "subjectaccessreviews"), _ev()],
    "clusterrole-aggregation-controller": [
        _r("escalate get list patch update watch", GROUP, "clusterroles")],
    "cronjob-controller": [
        _r("get list update watch", "batch", "cronjobs"),
        _r("create delete get list patch update watch", "batch", "jobs"),
        _r("update", "batch", "cronjobs/status"), _r("update", "batch", "cronjobs/finalizers"),
        _r("delete list watch", "core", "pods"), _ev()],
    "daemon-set-controller": [
        _r(READ, "apps extensions", "daemonsets"), _r("update", "apps extensions", "daemonsets/status"),
        _r("update", "apps extensions", "daemonsets/finalizers"), _r("list watch", "core", "nodes"),
        _r("create delete list patch watch", "core", "pods"), _r("create", "core", "pods/binding"),
        _r("create delete get list patch update watch", "apps", "controllerrevisions"), _ev()],
    "deployment-controller": [
        _r("get list update watch", "apps extensions", "deployments"),
        _r("update", "apps extensions", "deployments/status"),
        _r("update", "apps extensions", "deployments/finalizers"),
        _r("create delete get list patch update watch", "apps extensions", "replicasets"),
        _r("get list update watch", "core", "pods"), _ev()],
    "disruption-controller": [
        _r(READ, "apps extensions", "deployments"), _r(READ, "apps extensions", "replicasets"),
        _r(READ, "core", "replicationcontrollers"), _r(READ, "policy", "poddisruptionbudgets"),
        _r(READ, "apps", "statefulsets"), _r("update", "policy", "poddisruptionbudgets/status"),
        _r("patch update", "core", "pods/status"), _r("get", "*", "*/scale"), _ev()],
    "endpoint-controller": [
        _r(READ, "core", "pods services"), _r("create delete get list update watch", "core", "endpoints"),
        _r("create", "core", "endpoints/restricted"), _ev()],
    "endpointslice-controller": [
        _r(READ, "core", "nodes pods services"), _r("update", "core", "services/finalizers"),
        _r("create delete get list update watch", "discovery.k8s.io", "endpointslices"), _ev()],
    "endpointslicemirroring-controller": [
        _r(READ, "core", "endpoints services"), _r("update", "core", "services/finalizers"),
        _r("update", "core", "endpoints/finalizers"),
        _r("create delete get list update watch", "discovery.k8s.io", "endpointslices"), _ev()],
    "ephemeral-volume-controller": [
        _r(READ, "core", "pods"), _r("update", "core", "pods/finalizers"),
        _r("create get list watch", "core", "persistentvolumeclaims"), _ev()],
    "expand-controller": [
        _r("get list patch update watch", "core", "persistentvolumes"),
        _r("patch update", "core", "persistentvolumeclaims/status"),
        _r(READ, "core", "persistentvolumeclaims"), _ev()],
    "generic-garbage-collector": [_r("delete get list patch update watch", "*", "*"), _ev()],
    "horizontal-pod-autoscaler": [
        _r(READ, "autoscaling", "horizontalpodautoscalers"),
        _r("update", "autoscaling", "horizontalpodautoscalers/status"), _r("get update", "*", "*/scale"),
        _r("list watch", "core", "pods"), _r("list watch", "metrics.k8s.io", "pods"),
        _r(READ, "custom.metrics.k8s.io", "*"), _r(READ, "external.metrics.k8s.io", "*"), _ev()],
    "job-controller": [
        _r("get list patch update watch", "batch", "jobs"), _r("update", "batch", "jobs/status"),
        _r("update", "batch", "jobs/finalizers"), _r("create delete list patch watch", "core", "pods"), _ev()],
    "legacy-service-account-token-cleaner": [
        _r("get", "core", "configmaps", "kube-apiserver-legacy-service-account-token-tracking"),
        _r("delete patch", "core", "secrets")],
    "namespace-controller": [
        _r("delete get list watch", "core", "namespaces"),
        _r("update", "core", "namespaces/finalize namespaces/status"),
        _r("delete deletecollection get list watch", "*", "*")],
    "node-controller": [
        _r("delete get list patch update watch", "core", "nodes"), _r("patch update", "core", "nodes/status"),
        _r("patch update", "core", "pods/status"), _r("delete get list watch", "core", "pods"), _ev()],
    "persistent-volume-binder": [
        _r("create delete get list update watch", "core", "persistentvolumes"),
        _r("update", "core", "persistentvolumes/status"),
        _r("get list update watch", "core", "persistentvolumeclaims"),
        _r("update", "core", "persistentvolumeclaims/status"),
        _r("create delete get list watch", "core", "pods"), _r(READ, "storage.k8s.io", "storageclasses"),
        _r("list watch", "core", "nodes"), _ev(), _r("watch", "core", "events")],
    "pod-garbage-collector": [
        _r("delete list watch", "core", "pods"), _r(READ, "core", "nodes"), _r("patch", "core", "pods/status")],
    "pv-protection-controller": [_r("get list update watch", "core", "persistentvolumes"), _ev()],
    "pvc-protection-controller": [
        _r("get list update watch", "core", "persistentvolumeclaims"),
        _r("update", "core", "persistentvolumeclaims/status"), _r(READ, "core", "pods"), _ev()],
    "replicaset-controller": [
        _r("get list update watch", "apps extensions", "replicasets"),
        _r("update", "apps extensions", "replicasets/status"),
        _r("update", "apps extensions", "replicasets/finalizers"),
        _r("create delete list patch watch", "core", "pods"), _ev()],
    "replication-controller": [
        _r("get list update watch", "core", "replicationcontrollers"),
        _r("update", "core", "replicationcontrollers/status"),
        _r("update", "core", "replicationcontrollers/finalizers"),
        _r("create delete list patch watch", "core", "pods"), _ev()],
    "resourcequota-controller": [
        _r("list watch", "*", "*"), _r("update", "core", "resourcequotas/status"), _ev()],
    "root-ca-cert-publisher": [_r("create update", "core", "configmaps"), _ev()],
    "route-controller": [_r("list watch", "core", "nodes"), _r("patch", "core", "nodes/status"), _ev()],
    "service-account-controller": [_r("create", "core", "serviceaccounts"), _ev()],
    "service-controller": [
        _r(READ, "core", "services"), _r("patch update", "core", "services/status"),
        _r("list watch", "core", "nodes"), _ev()],
    "statefulset-controller": [
        _r("list watch", "core", "pods"), _r(READ, "apps", "statefulsets"),
        _r("update", "apps", "statefulsets/status"), _r("update", "apps", "statefulsets/finalizers"),
        _r("create delete get patch update", "core", "pods"),
        _r("create delete get list patch update watch", "apps", "controllerrevisions"),
        _r("create get list watch", "core", "persistentvolumeclaims"),
        _r("delete update", "core", "persistentvolumeclaims"), _r("update", "core", "pods/finalizers"), _ev()],
    "ttl-after-finished-controller": [_r("delete get list watch", "batch", "jobs"), _ev()],
    "ttl-controller": [_r("list patch update watch", "core", "nodes"), _ev()],
}

for _name, _rules in CONTROLLER_ROLES.items():
    CLUSTER_ROLES[f"system:controller:{_name}"] = (_rules, {}, None)


def _subject(kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"apiGroup": GROUP, "kind": kind, "name": name}


# binding name -> (cluster role, subjects)
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "cluster-admin": ("cluster-admin", [_subject("Group", "system:masters")]),
    "system:basic-user": ("system:basic-user", [_subject("Group", "system:authenticated")]),
    "system:discovery": ("system:discovery", [_subject("Group", "system:authenticated")]),
    "system:public-info-viewer": ("system:public-info-viewer", [
        _subject("Group", "system:authenticated"), _subject("Group", "system:unauthenticated")]),
    "system:kube-controller-manager": ("system:kube-controller-manager", [
        _subject("User", "system:kube-controller-manager")]),
    "system:kube-dns": ("system:kube-dns", [_subject("ServiceAccount", "kube-dns", "kube-system")]),
    "system:kube-scheduler": ("system:kube-scheduler", [_subject("User", "system:kube-scheduler")]),
    "system:volume-scheduler": ("system:volume-scheduler", [_subject("User", "system:kube-scheduler")]),
    "system:monitoring": ("system:monitoring", [_subject("Group", "system:monitoring")]),
    "system:node": ("system:node", []),
    "system:node-proxier": ("system:node-proxier", [_subject("User", "system:kube-proxy")]),
    "system:service-account-issuer-discovery": ("system:service-account-issuer-discovery", [
        _subject("Group", "system:serviceaccounts")]),
}
# What `kubeadm init` adds for joining nodes (its bootstrap-token phase): tokens of the default node group
# may create CSRs, have their node client CSRs approved, and look up nodes; nodes renew their own client
# certificates. kubelite's `init`/`join` rely on the same grants, so they are part of its policy.
KUBEADM_NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
CLUSTER_ROLES["kubeadm:get-nodes"] = ([_r("get", "core", "nodes")], {}, None)
# Every node runs kube-proxy, NetworkPolicy enforcement and the pod network (routes or VXLAN to the other nodes)
# with its own credentials: what kubeadm's kube-proxy DaemonSet reads through its ServiceAccount, plus the
# policies and namespaces, readable to every node rather than to a token mounted on every node.
CLUSTER_ROLES["kubelite:node-network"] = ([
    _r("list watch", "core", "endpoints services namespaces nodes"),
    _r("list watch", "discovery.k8s.io", "endpointslices"),
    _r("list watch", "networking.k8s.io", "networkpolicies"),
], {}, None)
CLUSTER_ROLE_BINDINGS.update({
    "kubeadm:kubelet-bootstrap": ("system:node-bootstrapper", [_subject("Group", KUBEADM_NODE_TOKEN_GROUP)]),
    "kubeadm:node-autoapprove-bootstrap": ("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
        _subject("Group", KUBEADM_NODE_TOKEN_GROUP)]),
    "kubeadm:node-autoapprove-certificate-rotation": (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [_subject("Group", "system:nodes")]),
    "kubeadm:get-nodes": ("kubeadm:get-nodes", [_subject("Group", KUBEADM_NODE_TOKEN_GROUP)]),
    "kubelite:node-network": ("kubelite:node-network", [_subject("Group", "system:nodes")]),
})
for _name in CONTROLLER_ROLES:
    CLUSTER_ROLE_BINDINGS[f"system:controller:{_name}"] = (
        f"system:controller:{_name}", [_subject("ServiceAccount", _name, "kube-system")])
# The local-path provisioner (a controller of kubelite's controller-manager) acts as the ServiceAccount k3s's
# local-storage add-on gives it, with that add-on's role.
CLUSTER_ROLES["local-path-provisioner-role"] = ([
    _r(READ, "core", "nodes persistentvolumeclaims configmaps pods"),
    _r("create delete get list patch update watch", "core", "persistentvolumes"),
    _r(READ, "storage.k8s.io", "storageclasses"), _ev()], {}, None)
CLUSTER_ROLE_BINDINGS["local-path-provisioner-bind"] = (
    "local-path-provisioner-role", [_subject("ServiceAccount", "local-path-provisioner-service-account", "kube-system")])
# kubelite's components process reads through one shared informer cache (launcher.py) as this user: reads
# only, of everything its parts watch (the garbage collector and quota monitors watch every resource).
CLUSTER_ROLES["kubelite:component-informers"] = ([_r("get list watch", "*", "*")], {}, None)
CLUSTER_ROLE_BINDINGS["kubelite:component-informers"] = (
    "kubelite:component-informers", [_subject("User", "kubelite:component-informers")])

# Namespaced roles of the bootstrap policy: (namespace, name) -> rules; bound to the same-named subjects below.
ROLES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("kube-system", "extension-apiserver-authentication-reader"): [
        _r(READ, "core", "configmaps", "extension-apiserver-authentication")],
    ("kube-system", "system::leader-locking-kube-controller-manager"): [
        _r("watch", "core", "configmaps"),
        _r("get update", "core", "configmaps", "kube-controller-manager")],
    ("kube-system", "system::leader-locking-kube-scheduler"): [
        _r("watch", "core", "configmaps"), _r("get update", "core", "configmaps", "kube-scheduler")],
    ("kube-system", "system:controller:bootstrap-signer"): [_r(READ, "core", "secrets")],
    ("kube-system", "system:controller:cloud-provider"): [_r("create get list watch", "core", "configmaps")],
    ("kube-system", "system:controller:token-cleaner"): [
        _r("delete get list watch", "core", "secrets"), _ev()],
    ("kube-public", "system:controller:bootstrap-signer"): [
        _r(READ, "core", "configmaps"), _r("update", "core", "configmaps", "cluster-info"), _ev()],
    # kubeadm's: anyone may read the signed cluster-info a joining node starts from
    ("kube-public", "kubeadm:bootstrap-signer-clusterinfo"): [_r("get", "core", "configmaps", "cluster-info")],
    # kubeadm's: joining and joined nodes read the cluster's configuration (pod and Service ranges, DNS)
    ("kube-system", "kubeadm:nodes-kubeadm-config"): [_r("get", "core", "configmaps", "kubeadm-config")],
    ("kube-system", "kubeadm:kubelet-config"): [_r("get", "core", "configmaps", "kubelet-config")],
}
ROLE_BINDINGS: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {
    ("kube-system", "system::extension-apiserver-authentication-reader"): (
        "extension-apiserver-authentication-reader", [
            _subject("User", "system:kube-controller-manager"), _subject("User", "system:kube-scheduler")]),
    ("kube-system", "system::leader-locking-kube-controller-manager"): (
        "system::leader-locking-kube-controller-manager", [
            _subject("User", "system:kube-controller-manager"),
            _subject("ServiceAccount", "kube-controller-manager", "kube-system")]),
    ("kube-system", "system::leader-locking-kube-scheduler"): (
        "system::leader-locking-kube-scheduler", [
            _subject("User", "system:kube-scheduler"), _subject("ServiceAccount", "kube-scheduler", "kube-system")]),
    ("kube-system", "system:controller:bootstrap-signer"): (
        "system:controller:bootstrap-signer", [_subject("ServiceAccount", "bootstrap-signer", "kube-system")]),
    ("kube-system", "system:controller:cloud-provider"): (
        "system:controller:cloud-provider", [_subject("ServiceAccount", "cloud-provider", "kube-system")]),
    ("kube-system", "system:controller:token-cleaner"): (
        "system:controller:token-cleaner", [_subject("ServiceAccount", "token-cleaner", "kube-system")]),
    ("kube-public", "system:controller:bootstrap-signer"): (
        "system:controller:bootstrap-signer", [_subject("ServiceAccount", "bootstrap-signer", "kube-system")]),
    ("kube-public", "kubeadm:bootstrap-signer-clusterinfo"): (
        "kubeadm:bootstrap-signer-clusterinfo", [_subject("User", "system:anonymous")]),
    ("kube-system", "kubeadm:nodes-kubeadm-config"): ("kubeadm:nodes-kubeadm-config", [
        _subject("Group", KUBEADM_NODE_TOKEN_GROUP), _subject("Group", "system:nodes")]),
    ("kube-system", "kubeadm:kubelet-config"): ("kubeadm:kubelet-config", [
        _subject("Group", KUBEADM_NODE_TOKEN_GROUP), _subject("Group", "system:nodes")]),
}


def _meta(name: str, namespace: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**BOOTSTRAP_LABEL, **(labels or {})},
                            "annotations": {AUTOUPDATE: "true"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def cluster_roles() -> list[dict[str, Any]]:
    out = []
    for name, (rules, labels, selectors) in CLUSTER_ROLES.items():
        obj: dict[str, Any] = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": _meta(name, "", labels)}
        if selectors is not None:
            obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": dict(s)} for s in selectors]}
        obj["rules"] = copy.deepcopy(rules)
        out.append(obj)
    return out


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [{"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
             "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
             "subjects": copy.deepcopy(subjects)}
            for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items()]


def roles() -> list[dict[str, Any]]:
    return [{"apiVersion": f"{GROUP}/v1", "kind": "Role", "metadata": _meta(name, ns), "rules": copy.deepcopy(rules)}
            for (ns, name), rules in ROLES.items()]


def role_bindings() -> list[dict[str, Any]]:
    return [{"apiVersion": f"{GROUP}/v1", "kind": "RoleBinding", "metadata": _meta(name, ns),
             "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": role}, "subjects": copy.deepcopy(subjects)}
            for (ns, name), (role, subjects) in ROLE_BINDINGS.items()]


def _merge_missing(existing: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """existing + the wanted entries it lacks, or None when nothing is missing."""
    missing = [w for w in wanted if w not in existing]
    return [*existing, *missing] if missing else None


async def reconcile(ctx: ApiContext) -> None:
    """Create missing bootstrap objects; add missing rules/subjects to the ones still marked for auto-update."""
    from . import rest
    from .request_info import RequestInfo

    plans = [("clusterroles", cluster_roles(), "rules"), ("clusterrolebindings", cluster_role_bindings(), "subjects"),
             ("roles", roles(), "rules"), ("rolebindings", role_bindings(), "subjects")]

    async def one(resource: str, rt, obj: dict[str, Any], field: str) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        key = rt.key(ns, meta["name"])
        kv = await ctx.store.get(key)
        if kv is None:
            if ns and await ctx.store.get(f"/registry/namespaces/{ns}") is None:
                return
            info = RequestInfo(is_resource=True, path=rt.path(ns), verb="create", group=GROUP, version="v1",
                               namespace=ns, resource=resource, name=meta["name"])
            try:
                await rest.create_object(ctx, rt, obj, info, dry=False)
            except Exception as e:  # a concurrent start created it: fine
                log.debug("bootstrap %s %s: %s", resource, meta["name"], e)
            return
        current = codec.decode_kv(kv)
        if (current["metadata"].get("annotations") or {}).get(AUTOUPDATE) != "true":
            return
        if resource == "clusterroles" and obj.get("aggregationRule"):
            if current.get("aggregationRule") != obj["aggregationRule"]:
                current["aggregationRule"] = obj["aggregationRule"]
                await ctx.store.update(key, codec.encode(current), kv.mod_revision)
            return
        merged = _merge_missing(current.get(field) or [], obj.get(field) or [])
        if merged is not None:
            current[field] = merged
            await ctx.store.update(key, codec.encode(current), kv.mod_revision)

    jobs = []
    for resource, objects, field in plans:
        rt = ctx.registry.get(GROUP, "v1", resource)
        assert rt is not None
        jobs.extend(one(resource, rt, obj, field) for obj in objects)
    # concurrently, so the store commits them in a few batched transactions instead of ~100 fsyncs
    await asyncio.gather(*jobs)
