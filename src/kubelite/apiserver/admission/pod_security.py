"""PodSecurity: the Pod Security Standards from namespace labels (`pod-security.kubernetes.io/enforce|audit|warn`
with `-version`), as upstream's built-in pod-security-admission.

Enforce applies to Pods (creates, significant updates, and pod subresources other than exec, attach, binding,
eviction, log, portforward, proxy and status: so `ephemeralcontainers` is evaluated); workload objects that carry
a pod template (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController, PodTemplate)
get warnings and audit annotations only. Labelling a namespace with a stricter enforce level answers with warnings
naming the existing pods that violate it.

Defaults, as upstream: every level `privileged:latest` and no exemptions. kube-system is not exempt; it is
`privileged` because it carries no labels, so system pods keep working (label it to tighten it). Configure
defaults and exemptions with a PodSecurityConfiguration (`--admission-control-config-file`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...api import errors
from ...api import podsecurity as pss
from . import _store

Obj = dict[str, Any]

IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy",
                                      "status"})
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
MAX_PODS_TO_CHECK = 3000


@dataclass
class Exemptions:
    usernames: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    runtime_classes: list[str] = field(default_factory=list)


def significant_pod_update(pod: Obj, old: Obj) -> bool:
    """Only image and seccomp-annotation changes (or new containers) can change a pod's verdict on update."""
    notes = (pod.get("metadata") or {}).get("annotations") or {}
    old_notes = (old.get("metadata") or {}).get("annotations") or {}
    if notes.get(SECCOMP_POD_ANNOTATION) != old_notes.get(SECCOMP_POD_ANNOTATION):
        return True
    spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}

    def changed(c: Obj, oc: Obj) -> bool:
        key = SECCOMP_CONTAINER_PREFIX + str(c.get("name", ""))
        return c.get("image") != oc.get("image") or notes.get(key) != old_notes.get(key)

    for key in ("containers", "initContainers"):
        new_list, old_list = spec.get(key) or [], old_spec.get(key) or []
        if len(new_list) != len(old_list):
            return True
        if any(changed(c, oc) for c, oc in zip(new_list, old_list, strict=True)):
            return True
    old_ephemeral = {c.get("name"): c for c in old_spec.get("ephemeralContainers") or ()}
    for c in spec.get("ephemeralContainers") or ():
        oc = old_ephemeral.get(c.get("name"))
        if oc is None or changed(c, oc):
            return True
    return False


class PodSecurity:
    name = "PodSecurity"

    def __init__(self, defaults: pss.Policy | None = None, exemptions: Exemptions | None = None) -> None:
        self.defaults = defaults or pss.Policy()
        self.exemptions = exemptions or Exemptions()

    @classmethod
    def from_config(cls, conf: dict | None) -> PodSecurity:
        """From a PodSecurityConfiguration body (`defaults` and `exemptions` as upstream's v1 schema)."""
        if not conf:
            return cls()
        d = conf.get("defaults") or {}

        def lv(mode: str) -> pss.LevelVersion:
            return pss.parse_policy(f"{d.get(mode, 'privileged')}:{d.get(mode + '-version', 'latest')}")

        ex = conf.get("exemptions") or {}
        return cls(pss.Policy(lv("enforce"), lv("audit"), lv("warn")),
                   Exemptions(list(ex.get("usernames") or []), list(ex.get("namespaces") or []),
                              list(ex.get("runtimeClasses") or [])))

    # ------------------------------------------------------------ dispatch

    async def validate(self, ctx, a) -> None:
        if a.op not in ("CREATE", "UPDATE") or not isinstance(a.obj, dict):
            return
        if a.is_("", "namespaces"):
            await self._namespace(ctx, a)
        elif a.is_("", "pods"):
            await self._pod(ctx, a)
        elif (a.group, a.resource) in pss.POD_TEMPLATE_PATHS:
            await self._controller(ctx, a)

    def _exempt(self, a) -> str | None:
        if a.namespace and a.namespace in self.exemptions.namespaces:
            return "namespace"
        if a.username and a.username in self.exemptions.usernames:
            return "user"
        return None

    async def _policy(self, ctx, a) -> tuple[pss.Policy, list[pss.LabelError]]:
        ns = await _store.get(ctx, "", "v1", "namespaces", "", a.namespace)
        if ns is None:
            raise errors.internal(f"failed to lookup namespace {a.namespace}")
        return pss.policy_to_evaluate((ns.get("metadata") or {}).get("labels"), self.defaults)

    # ------------------------------------------------------------ pods and templates

    async def _pod(self, ctx, a) -> None:
        if a.subresource in IGNORED_POD_SUBRESOURCES:
            return
        exempt = self._exempt(a)
        if exempt:
            a.annotations[pss.EXEMPT_ANNOTATION] = exempt
            return
        policy, errs = await self._policy(ctx, a)
        if not errs and policy.enforce.level == policy.warn.level == policy.audit.level == pss.PRIVILEGED:
            return
        if a.op == "UPDATE" and isinstance(a.old, dict) and not significant_pod_update(a.obj, a.old):
            return
        self._evaluate(a, policy, errs, a.obj.get("metadata") or {}, a.obj.get("spec") or {}, enforce=True)

    async def _controller(self, ctx, a) -> None:
        if a.subresource:
            return
        exempt = self._exempt(a)
        if exempt:
            a.annotations[pss.EXEMPT_ANNOTATION] = exempt
            return
        try:
            policy, errs = await self._policy(ctx, a)
        except errors.ApiError:
            return
        if not errs and policy.warn.level == policy.audit.level == pss.PRIVILEGED:
            return
        found = pss.extract_pod_spec(a.group, a.resource, a.obj)
        if found is None:
            return
        self._evaluate(a, policy, errs, found[0], found[1], enforce=False)

    def _evaluate(self, a, policy: pss.Policy, errs: list[pss.LabelError], meta: Obj, spec: Obj,
                  enforce: bool) -> None:
        runtime_class = spec.get("runtimeClassName")
        if runtime_class and runtime_class in self.exemptions.runtime_classes:
            a.annotations[pss.EXEMPT_ANNOTATION] = "runtimeClass"
            return
        if errs:
            a.annotations["error"] = "Failed to parse policy: " + _aggregate_label_errors(errs)
        cache: dict[pss.LevelVersion, list[pss.CheckResult]] = {}

        def results(lv: pss.LevelVersion) -> list[pss.CheckResult]:
            if lv not in cache:
                cache[lv] = pss.evaluate_pod(lv, meta, spec)
            return cache[lv]

        denied: errors.ApiError | None = None
        if enforce:
            a.annotations[pss.ENFORCED_POLICY_ANNOTATION] = str(policy.enforce)
            bad = results(policy.enforce)
            if bad:
                denied = a.forbidden(f'violates PodSecurity "{policy.enforce}": {pss.forbidden_detail(bad)}')
        bad = results(policy.audit)
        if bad:
            a.annotations[pss.AUDIT_VIOLATIONS_ANNOTATION] = \
                f'would violate PodSecurity "{policy.audit}": {pss.forbidden_detail(bad)}'
        if denied is not None:
            raise denied
        bad = results(policy.warn)
        if bad:
            a.warnings.append(f'would violate PodSecurity "{policy.warn}": {pss.forbidden_detail(bad)}')

    # ------------------------------------------------------------ namespaces

    async def _namespace(self, ctx, a) -> None:
        if a.subresource:
            return
        labels = (a.obj.get("metadata") or {}).get("labels")
        policy, errs = pss.policy_to_evaluate(labels, self.defaults)
        if a.op == "CREATE":
            if errs:
                raise _invalid(a.name, errs)
            return
        old_policy, old_errs = pss.policy_to_evaluate(((a.old or {}).get("metadata") or {}).get("labels"),
                                                      self.defaults)
        if errs and (not old_errs or errs != old_errs):
            raise _invalid(a.name, errs)
        new, old = policy.enforce, old_policy.enforce
        if new == old or new.level == pss.PRIVILEGED:
            return
        if new.version == old.version and pss.compare_levels(new.level, old.level) < 1:
            return
        if a.name in self.exemptions.namespaces:
            return
        a.warnings.extend(await self.pods_in_namespace_warnings(ctx, a.name, new))

    async def pods_in_namespace_warnings(self, ctx, namespace: str, enforce: pss.LevelVersion) -> list[str]:
        pods = await _store.list_all(ctx, "", "v1", "pods", namespace)
        ordered: list[Obj] = []
        duplicates: list[Obj] = []
        seen_controllers: set[str] = set()
        for pod in pods:
            spec = pod.get("spec") or {}
            if spec.get("runtimeClassName") and spec["runtimeClassName"] in self.exemptions.runtime_classes:
                continue
            owner = next((o for o in (pod.get("metadata") or {}).get("ownerReferences") or ()
                          if o.get("controller")), None)
            if owner is None:
                ordered.append(pod)
            elif owner.get("uid") in seen_controllers:
                duplicates.append(pod)
            else:
                seen_controllers.add(owner.get("uid"))
                ordered.append(pod)
        ordered += duplicates
        total = len(ordered)
        ordered = ordered[:MAX_PODS_TO_CHECK]
        by_reason: dict[str, list] = {}
        order: list[str] = []
        for pod in ordered:
            bad = pss.evaluate_pod(enforce, pod.get("metadata") or {}, pod.get("spec") or {})
            if not bad:
                continue
            reason = pss.forbidden_reason(bad)
            name = pod["metadata"].get("name", "")
            if reason not in by_reason:
                by_reason[reason] = [name, 0]
                order.append(reason)
            entry = by_reason[reason]
            entry[0] = min(entry[0], name)
            entry[1] += 1
        warnings: list[str] = []
        if len(ordered) < total:
            warnings.append(f"new PodSecurity enforce level only checked against the first {len(ordered)} of "
                            f"{total} existing pods")
        if order:
            warnings.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
                            f'"{enforce}"')
        decorated = []
        for reason in order:
            first, count = by_reason[reason]
            if count == 1:
                decorated.append(f"{first}: {reason}")
            elif count == 2:
                decorated.append(f"{first} (and 1 other pod): {reason}")
            else:
                decorated.append(f"{first} (and {count - 1} other pods): {reason}")
        return warnings + sorted(decorated)


def _aggregate_label_errors(errs: list[pss.LabelError]) -> str:
    parts = [f'{e.field}: Invalid value: "{e.value}": {e.message}' for e in errs]
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


def _invalid(name: str, errs: list[pss.LabelError]) -> errors.ApiError:
    causes = [{"type": "FieldValueInvalid", "field": e.field, "message": f'Invalid value: "{e.value}": {e.message}'}
              for e in errs]
    return errors.invalid("Namespace", "", name, causes)
