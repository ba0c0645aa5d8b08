"""The served resource types: group, version, names, scope, verbs, subresources and storage keys.

Names, short names, categories and verbs follow upstream kube-apiserver v1.33 discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import event_conversion, hpa_conversion

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str  # kind of the subresource's body
    group: str = ""  # "" means the parent's group
    version: str = ""
    verbs: tuple[str, ...] = ("get", "patch", "update")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str  # plural, as in the URL
    kind: str
    namespaced: bool
    storage_prefix: str  # e.g. /registry/pods/, matching upstream's etcd layout
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    schema_name: str = ""  # OpenAPI definition name, e.g. io.k8s.api.core.v1.Pod
    has_spec: bool = True  # whether generation is bumped on spec changes
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def prefix(self, namespace: str | None = None) -> str:
        """Key prefix for a list: one namespace, or all of them when namespace is None."""
        if self.namespaced and namespace:
            return f"{self.storage_prefix}{namespace}/"
        return self.storage_prefix

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = "/api/v1" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.resource}"
        if name:
            base += f"/{name}"
        return base


STATUS = Subresource("status", "")
SCALE = Subresource("scale", "Scale", "autoscaling", "v1")


def _schema(group: str, version: str, kind: str) -> str:
    if group == "":
        pkg = "core"
    elif group.endswith(".k8s.io"):
        pkg = group.removesuffix(".k8s.io").split(".")[0]
        if group == "rbac.authorization.k8s.io":
            pkg = "rbac"
    else:
        pkg = group
    return f"io.k8s.api.{pkg}.{version}.{kind}"


def _rt(group: str, version: str, resource: str, kind: str, namespaced: bool, prefix: str, **kw) -> ResourceType:
    kw.setdefault("schema_name", _schema(group, version, kind))
    return ResourceType(group, version, resource, kind, namespaced, f"/registry/{prefix}/", **kw)


N, C = True, False  # namespaced, cluster-scoped

BUILTIN: tuple[ResourceType, ...] = (
    # core/v1
    _rt("", "v1", "namespaces", "Namespace", C, "namespaces", short_names=("ns",), verbs=NO_COLLECTION_DELETE,
        subresources=(Subresource("finalize", "", verbs=("update",)), STATUS), has_spec=False),
    _rt("", "v1", "pods", "Pod", N, "pods", short_names=("po",), categories=("all",), has_spec=False,
        subresources=(Subresource("attach", "PodAttachOptions", verbs=("create", "get")),
                      Subresource("binding", "Binding", verbs=("create",)),
                      Subresource("ephemeralcontainers", ""),
                      Subresource("eviction", "Eviction", "policy", "v1", verbs=("create",)),
                      Subresource("exec", "PodExecOptions", verbs=("create", "get")),
                      Subresource("log", "Pod", verbs=("get",)),
                      Subresource("portforward", "PodPortForwardOptions", verbs=("create", "get")),
                      Subresource("proxy", "PodProxyOptions",
                                  verbs=("create", "delete", "get", "patch", "update")),
                      Subresource("resize", ""), STATUS)),
    _rt("", "v1", "services", "Service", N, "services/specs", short_names=("svc",), categories=("all",),
        has_spec=False,
        subresources=(Subresource("proxy", "ServiceProxyOptions",
                                  verbs=("create", "delete", "get", "patch", "update")), STATUS)),
    _rt("", "v1", "endpoints", "Endpoints", N, "services/endpoints", short_names=("ep",), has_spec=False),
    _rt("", "v1", "configmaps", "ConfigMap", N, "configmaps", short_names=("cm",), has_spec=False),
    _rt("", "v1", "secrets", "Secret", N, "secrets", has_spec=False),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", N, "serviceaccounts", short_names=("sa",),
        has_spec=False, subresources=(Subresource("token", "TokenRequest", "authentication.k8s.io", "v1",
                                                  verbs=("create",)),)),
    _rt("", "v1", "nodes", "Node", C, "minions", short_names=("no",), has_spec=False,
        subresources=(Subresource("proxy", "NodeProxyOptions",
                                  verbs=("create", "delete", "get", "patch", "update")), STATUS)),
    _rt("", "v1", "events", "Event", N, "events", short_names=("ev",), has_spec=False),
    _rt("", "v1", "persistentvolumes", "PersistentVolume", C, "persistentvolumes", short_names=("pv",),
        has_spec=False, subresources=(STATUS,)),
    _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", N, "persistentvolumeclaims",
        short_names=("pvc",), has_spec=False, subresources=(STATUS,)),
    _rt("", "v1", "replicationcontrollers", "ReplicationController", N, "controllers", short_names=("rc",),
        categories=("all",), subresources=(SCALE, STATUS)),
    _rt("", "v1", "limitranges", "LimitRange", N, "limitranges", short_names=("limits",), has_spec=False),
    _rt("", "v1", "resourcequotas", "ResourceQuota", N, "resourcequotas", short_names=("quota",),
        has_spec=False, subresources=(STATUS,)),
    _rt("", "v1", "podtemplates", "PodTemplate", N, "podtemplates", has_spec=False),
    # apps/v1
    _rt("apps", "v1", "deployments", "Deployment", N, "deployments", short_names=("deploy",),
        categories=("all",), subresources=(SCALE, STATUS)),
    _rt("apps", "v1", "replicasets", "ReplicaSet", N, "replicasets", short_names=("rs",), categories=("all",),
        subresources=(SCALE, STATUS)),
    _rt("apps", "v1", "statefulsets", "StatefulSet", N, "statefulsets", short_names=("sts",),
        categories=("all",), subresources=(SCALE, STATUS)),
    _rt("apps", "v1", "daemonsets", "DaemonSet", N, "daemonsets", short_names=("ds",), categories=("all",),
        subresources=(STATUS,)),
    _rt("apps", "v1", "controllerrevisions", "ControllerRevision", N, "controllerrevisions", has_spec=False),
    # batch/v1
    _rt("batch", "v1", "jobs", "Job", N, "jobs", categories=("all",), subresources=(STATUS,)),
    _rt("batch", "v1", "cronjobs", "CronJob", N, "cronjobs", short_names=("cj",), categories=("all",),
        subresources=(STATUS,)),
    # networking.k8s.io/v1
    _rt("networking.k8s.io", "v1", "ingresses", "Ingress", N, "ingress", short_names=("ing",),
        subresources=(STATUS,)),
    _rt("networking.k8s.io", "v1", "ingressclasses", "IngressClass", C, "ingressclasses"),
    _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", N, "networkpolicies",
        short_names=("netpol",)),
    # authentication.k8s.io/v1 (create-only reviews, never stored)
    _rt("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", C, "selfsubjectreviews",
        verbs=CREATE_ONLY, has_spec=False),
    _rt("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", C, "tokenreviews", verbs=CREATE_ONLY),
    # authorization.k8s.io/v1 (create-only reviews, never stored: apiserver/access_reviews.py)
    _rt("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", N,
        "localsubjectaccessreviews", verbs=CREATE_ONLY),
    _rt("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", C,
        "selfsubjectaccessreviews", verbs=CREATE_ONLY),
    _rt("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", C,
        "selfsubjectrulesreviews", verbs=CREATE_ONLY),
    _rt("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", C, "subjectaccessreviews",
        verbs=CREATE_ONLY),
    # rbac.authorization.k8s.io/v1
    _rt("rbac.authorization.k8s.io", "v1", "roles", "Role", N, "roles", has_spec=False),
    _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", N, "rolebindings", has_spec=False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", C, "clusterroles", has_spec=False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", C,
        "clusterrolebindings", has_spec=False),
    # certificates.k8s.io/v1 (create/update rules: apiserver/certificates.py)
    _rt("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", C,
        "certificatesigningrequests", short_names=("csr",), has_spec=False,
        subresources=(Subresource("approval", ""), STATUS)),
    # coordination.k8s.io/v1
    _rt("coordination.k8s.io", "v1", "leases", "Lease", N, "leases", has_spec=False),
    # discovery.k8s.io/v1
    _rt("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", N, "endpointslices", has_spec=False),
    # storage.k8s.io/v1
    _rt("storage.k8s.io", "v1", "storageclasses", "StorageClass", C, "storageclasses", short_names=("sc",),
        has_spec=False),
    # events.k8s.io/v1: the core events themselves (one storage), converted on the way in and out
    _rt("events.k8s.io", "v1", "events", "Event", N, "events", short_names=("ev",),
        has_spec=False, extra=dict(event_conversion.CONVERSION)),
    # Kinds upstream serves that kubelite keeps as plain storage (nothing acts on them: webhooks and admission
    # policies are stored, not enforced; flow-control objects do not shape traffic).
    _rt("", "v1", "componentstatuses", "ComponentStatus", C, "componentstatuses", short_names=("cs",),
        verbs=("get", "list"), has_spec=False),
    _rt("", "v1", "bindings", "Binding", N, "bindings", verbs=CREATE_ONLY, has_spec=False),
    _rt("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", N, "horizontalpodautoscalers",
        short_names=("hpa",), categories=("all",), subresources=(STATUS,)),
    _rt("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", N, "horizontalpodautoscalers",
        short_names=("hpa",), categories=("all",), subresources=(STATUS,), extra=dict(hpa_conversion.CONVERSION)),
    _rt("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", C, "runtimeclasses", has_spec=False),
    _rt("storage.k8s.io", "v1", "csidrivers", "CSIDriver", C, "csidrivers"),
    _rt("storage.k8s.io", "v1", "csinodes", "CSINode", C, "csinodes"),
    _rt("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", N, "csistoragecapacities",
        has_spec=False),
    _rt("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", C, "volumeattachments",
        subresources=(STATUS,)),
    _rt("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", C,
        "mutatingwebhookconfigurations", categories=("api-extensions",), has_spec=False),
    _rt("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", C,
        "validatingadmissionpolicies", categories=("api-extensions",), subresources=(STATUS,)),
    _rt("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding", C, "validatingadmissionpolicybindings", categories=("api-extensions",)),
    _rt("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
        C, "validatingwebhookconfigurations", categories=("api-extensions",), has_spec=False),
    _rt("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", C, "flowschemas",
        subresources=(STATUS,)),
    _rt("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "PriorityLevelConfiguration", C,
        "prioritylevelconfigurations", subresources=(STATUS,)),
    _rt("networking.k8s.io", "v1", "ipaddresses", "IPAddress", C, "ipaddresses", short_names=("ip",)),
    _rt("networking.k8s.io", "v1", "servicecidrs", "ServiceCIDR", C, "servicecidrs", subresources=(STATUS,)),
    # policy/v1
    _rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", N, "poddisruptionbudgets",
        short_names=("pdb",), subresources=(STATUS,)),
    # scheduling.k8s.io/v1
    _rt("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", C, "priorityclasses",
        short_names=("pc",), has_spec=False),
    # apiextensions.k8s.io/v1 (the types a CRD defines are added at run time by apiserver/crds.py)
    _rt("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", C,
        "apiextensions.k8s.io/customresourcedefinitions", short_names=("crd", "crds"),
        categories=("api-extensions",), subresources=(STATUS,),
        schema_name="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"),
)

# Group-versions in the order upstream lists them in /apis.
GROUP_ORDER = (
    "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
    "certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io",
    "node.k8s.io", "discovery.k8s.io", "flowcontrol.apiserver.k8s.io",
)


class Registry:
    """Lookup of served resource types by URL coordinates, kind, or a name kubectl would type."""

    def __init__(self, types: tuple[ResourceType, ...] = BUILTIN) -> None:
        self._types: list[ResourceType] = []
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._by_gvk: dict[tuple[str, str, str], ResourceType] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types.append(rt)
        self._by_gvr[(rt.group, rt.version, rt.resource)] = rt
        self._by_gvk[(rt.group, rt.version, rt.kind)] = rt

    def remove(self, rt: ResourceType) -> None:
        self._types.remove(rt)
        self._by_gvr.pop((rt.group, rt.version, rt.resource), None)
        self._by_gvk.pop((rt.group, rt.version, rt.kind), None)

    def __iter__(self):
        return iter(self._types)

    def get(self, group: str, version: str, resource: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, resource))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        return self._by_gvk.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self.by_kind(group, version, kind)

    def groups(self) -> list[tuple[str, list[str]]]:
        """(group, [versions]) for every non-core group, in upstream's order."""
        seen: dict[str, list[str]] = {}
        for rt in self._types:
            if rt.group:
                versions = seen.setdefault(rt.group, [])
                if rt.version not in versions:
                    versions.append(rt.version)

        def order(g: str) -> tuple[int, str]:
            return (GROUP_ORDER.index(g), g) if g in GROUP_ORDER else (len(GROUP_ORDER), g)

        return [(g, seen[g]) for g in sorted(seen, key=order)]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types if rt.group == group and rt.version == version]
