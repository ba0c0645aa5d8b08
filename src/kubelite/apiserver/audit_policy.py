"""The audit Policy (`audit.k8s.io/v1`): which level and stages each request is logged at.

Rules are tried in order and the first that matches decides, as upstream's policy checker: a rule matches
when every field it sets matches (users, userGroups, verbs, then either resources/namespaces for resource
requests or nonResourceURLs for the others).  No rule matching means level None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
API_VERSIONS = ("audit.k8s.io/v1",)
_RANK = {level: i for i, level in enumerate(LEVELS)}


def at_least(level: str, floor: str) -> bool:
    return _RANK[level] >= _RANK[floor]


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str
    resources: tuple[str, ...]
    resource_names: frozenset[str]

    def matches(self, group: str, resource: str, subresource: str, name: str) -> bool:
        if group != self.group:
            return False
        if not self.resources:
            return True
        if self.resource_names and name not in self.resource_names:
            return False
        combined = f"{resource}/{subresource}" if subresource else resource
        for spec in self.resources:
            if spec == combined or spec == "*":
                return True
            if subresource and spec.startswith("*/") and spec[2:] == subresource:
                return True
            if spec.endswith("/*") and spec[:-2] == resource:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Rule:
    level: str
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, user, attrs: Attributes) -> bool:
        if self.users and (user is None or user.name not in self.users):
            return False
        if self.user_groups and (user is None or not any(g in self.user_groups for g in user.groups)):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            if not attrs.is_resource:
                return False
            if self.namespaces and attrs.namespace not in self.namespaces:
                return False
            if not self.resources:
                return True
            return any(gr.matches(attrs.group, attrs.resource, attrs.subresource, attrs.name)
                       for gr in self.resources)
        if self.non_resource_urls:
            if attrs.is_resource:
                return False
            return any(_path_matches(attrs.path, spec) for spec in self.non_resource_urls)
        return True


def _path_matches(path: str, spec: str) -> bool:
    if spec == "*" or spec == path:
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a rule looks at: upstream's authorizer attributes of the request (before impersonation)."""

    verb: str
    is_resource: bool
    path: str = ""
    group: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool


@dataclass
class Policy:
    rules: list[Rule]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def evaluate(self, user, attrs: Attributes) -> Decision:
        for rule in self.rules:
            if rule.matches(user, attrs):
                managed = self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                return Decision(rule.level, self.omit_stages | rule.omit_stages, managed)
        return Decision("None", self.omit_stages, self.omit_managed_fields)


def _strings(value: Any, path: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{path}: Invalid value: must be a list of strings")
        return []
    return value


def _stages(value: Any, path: str, problems: list[str]) -> frozenset[str]:
    stages = _strings(value, path, problems)
    for i, s in enumerate(stages):
        if s not in STAGES:
            problems.append(f'{path}[{i}]: Unsupported value: "{s}": supported values: '
                            + ", ".join(f'"{x}"' for x in STAGES))
    return frozenset(stages)


def parse_policy(doc: Any, source: str = "") -> Policy:
    """A Policy from its parsed document; ValueError names every problem."""
    if not isinstance(doc, dict):
        raise ValueError(f"failed decoding audit policy{' file ' + source if source else ''}: not an object")
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if kind != "Policy" or api_version not in API_VERSIONS:
        raise ValueError(f'failed decoding: no kind "{kind}" is registered for version "{api_version}"')
    problems: list[str] = []
    rules = []
    for i, raw in enumerate(doc.get("rules") or []):
        path = f"rules[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{path}: Invalid value: must be an object")
            continue
        level = raw.get("level")
        if level not in LEVELS:
            problems.append(f'{path}.level: Unsupported value: "{level}": supported values: '
                            + ", ".join(f'"{x}"' for x in LEVELS) if level else f"{path}.level: Required value")
            continue
        groups = []
        for j, gr in enumerate(raw.get("resources") or []):
            if not isinstance(gr, dict):
                problems.append(f"{path}.resources[{j}]: Invalid value: must be an object")
                continue
            names = _strings(gr.get("resourceNames"), f"{path}.resources[{j}].resourceNames", problems)
            resources = _strings(gr.get("resources"), f"{path}.resources[{j}].resources", problems)
            if names and not resources:
                problems.append(f"{path}.resources[{j}].resourceNames: Invalid value: resourceNames require "
                                "a non-empty resources list")
            groups.append(GroupResources(gr.get("group") or "", tuple(resources), frozenset(names)))
        urls = _strings(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs", problems)
        if urls and (groups or raw.get("namespaces")):
            problems.append(f"{path}.nonResourceURLs: Invalid value: rules cannot apply to both regular "
                            "resources and non-resource URLs")
        omit_managed = raw.get("omitManagedFields")
        rules.append(Rule(
            level=level,
            users=frozenset(_strings(raw.get("users"), f"{path}.users", problems)),
            user_groups=frozenset(_strings(raw.get("userGroups"), f"{path}.userGroups", problems)),
            verbs=frozenset(_strings(raw.get("verbs"), f"{path}.verbs", problems)),
            resources=tuple(groups),
            namespaces=frozenset(_strings(raw.get("namespaces"), f"{path}.namespaces", problems)),
            non_resource_urls=tuple(urls),
            omit_stages=_stages(raw.get("omitStages"), f"{path}.omitStages", problems),
            omit_managed_fields=None if omit_managed is None else bool(omit_managed)))
    omit = _stages(doc.get("omitStages"), "omitStages", problems)
    if problems:
        raise ValueError("; ".join(problems))
    if not rules:
        raise ValueError(f"loaded illegal policy with 0 rules from file {source}")
    return Policy(rules, omit, bool(doc.get("omitManagedFields", False)))


def load_policy(path: str) -> Policy:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f"failed to read file path {path!r}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"failed decoding file {path!r}: {e}") from None
    return parse_policy(doc, path)
