"""Scenarios as data: one YAML file each under scenarios/, loaded and checked here.

A scenario file holds (see scenarios/README.md for the whole format):

    id, order, title{en,zh}, technique{id,name}, difficulty, needs_containers, cis[], upstream_default{en,zh}
    story{en,zh}
    setup:   {manifests, wait[]}             workloads present in every mode (weak, defended, default cluster)
    weak:    {flags[], kubelet_args[], manifests}   what the lab turns weak on purpose
    attack:  [step…]                          each step: title, run{kind…}, save, succeeds_if, blocked_if
    defense: {title, explain, flags_add[], flags_remove[], kubelet_args_remove[], manifests, delete, commands[]}
    evidence:{audit[{user, verb, resource, namespace, code}], events{namespace, reason}}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

SCENARIO_DIR = os.path.join(os.path.dirname(__file__), "scenarios")
LANGS = ("en", "zh")
STEP_KINDS = ("kubectl", "http", "host")
DIFFICULTIES = ("easy", "medium", "hard")
MATCH_KEYS = ("exit", "status", "contains", "not_contains", "regex")


class ScenarioError(ValueError):
    """A scenario file is malformed (the message names the file and the field)."""


Text = dict[str, str]


def text(value: Text | str | None, lang: str) -> str:
    """The `lang` version of a bilingual field, English when it has no such version."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.get(lang) or value.get("en") or ""


@dataclass
class Step:
    title: Text
    run: dict[str, Any]
    save: dict[str, str] = field(default_factory=dict)  # variable -> regex (group 1, else the whole match)
    succeeds_if: dict[str, Any] = field(default_factory=dict)
    blocked_if: dict[str, Any] = field(default_factory=dict)

    @property
    def decisive(self) -> bool:
        return bool(self.succeeds_if)


@dataclass
class Scenario:
    id: str
    order: int
    title: Text
    technique: dict[str, str]
    difficulty: str
    story: Text
    attack: list[Step]
    defense: dict[str, Any]
    evidence: dict[str, Any]
    needs_containers: bool = False
    cis: list[str] = field(default_factory=list)
    upstream_default: Text = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    weak: dict[str, Any] = field(default_factory=dict)
    addons: list[str] = field(default_factory=list)  # built-in add-ons the scenario needs (e.g. dashboard)
    default_weak: bool = False  # upstream's default is the weak side: the attack succeeds on a default cluster
    path: str = ""

    def weak_flags(self) -> list[str]:
        return list(self.weak.get("flags") or []) + [f"--kubelet-arg={a}" for a in self.weak.get("kubelet_args") or []]

    def defended_flags(self) -> list[str]:
        removed = set(self.defense.get("flags_remove") or [])
        removed |= {f"--kubelet-arg={a}" for a in self.defense.get("kubelet_args_remove") or []}
        kept = [f for f in self.weak_flags() if f not in removed]
        return kept + list(self.defense.get("flags_add") or [])


def _need(doc: dict, key: str, kind: type | tuple, where: str) -> Any:
    if key not in doc:
        raise ScenarioError(f"{where}: missing {key!r}")
    if not isinstance(doc[key], kind):
        raise ScenarioError(f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}")
    return doc[key]


def _bilingual(doc: dict, key: str, where: str) -> Text:
    value = _need(doc, key, dict, where)
    for lang in LANGS:
        if not isinstance(value.get(lang), str) or not value[lang].strip():
            raise ScenarioError(f"{where}: {key}.{lang} is missing")
    return value


def _match(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ScenarioError(f"{where}: must be a mapping")
    unknown = set(value) - set(MATCH_KEYS)
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)} (known: {', '.join(MATCH_KEYS)})")
    return value


def _step(doc: Any, where: str) -> Step:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: a step must be a mapping")
    run = _need(doc, "run", dict, where)
    kind = run.get("kind")
    if kind not in STEP_KINDS:
        raise ScenarioError(f"{where}: run.kind must be one of {', '.join(STEP_KINDS)}, got {kind!r}")
    if kind in ("kubectl", "host") and not isinstance(run.get("args"), list):
        raise ScenarioError(f"{where}: run.args must be a list")
    if kind == "http" and not (run.get("path") or run.get("url")):
        raise ScenarioError(f"{where}: an http step needs run.path or run.url")
    save = doc.get("save") or {}
    if not isinstance(save, dict):
        raise ScenarioError(f"{where}: save must map variable names to regexes")
    return Step(title=_bilingual(doc, "title", where), run=run, save=save,
                succeeds_if=_match(doc.get("succeeds_if"), where + ".succeeds_if"),
                blocked_if=_match(doc.get("blocked_if"), where + ".blocked_if"))


def parse_scenario(doc: Any, where: str = "<scenario>") -> Scenario:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: a scenario must be a mapping")
    sid = _need(doc, "id", str, where)
    steps = _need(doc, "attack", list, where)
    if not steps:
        raise ScenarioError(f"{where}: attack has no steps")
    attack = [_step(s, f"{where}: attack[{i}]") for i, s in enumerate(steps)]
    if not any(s.decisive for s in attack):
        raise ScenarioError(f"{where}: no attack step has succeeds_if, so nothing decides the outcome")
    defense = _need(doc, "defense", dict, where)
    _bilingual(defense, "title", where + ": defense")
    _bilingual(defense, "explain", where + ": defense")
    difficulty = _need(doc, "difficulty", str, where)
    if difficulty not in DIFFICULTIES:
        raise ScenarioError(f"{where}: difficulty must be one of {', '.join(DIFFICULTIES)}")
    technique = _need(doc, "technique", dict, where)
    if not str(technique.get("id", "")).startswith("MS-TA"):
        raise ScenarioError(f"{where}: technique.id must be a Threat Matrix id (MS-TA9xxx)")
    evidence = doc.get("evidence") or {}
    if not evidence.get("audit"):
        raise ScenarioError(f"{where}: evidence.audit is missing (the audit-log query)")
    return Scenario(
        id=sid, order=int(doc.get("order", 999)), title=_bilingual(doc, "title", where), technique=technique,
        difficulty=difficulty, story=_bilingual(doc, "story", where), attack=attack, defense=defense,
        evidence=evidence, needs_containers=bool(doc.get("needs_containers", False)),
        cis=[str(c) for c in doc.get("cis") or []], upstream_default=doc.get("upstream_default") or {},
        setup=doc.get("setup") or {}, weak=doc.get("weak") or {}, addons=list(doc.get("addons") or []),
        default_weak=bool(doc.get("default_weak", False)), path=where)


def load_file(path: str) -> Scenario:
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ScenarioError(f"{path}: {e}") from None
    scenario = parse_scenario(doc, path)
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.split("-", 1)[-1] != scenario.id and stem != scenario.id:
        raise ScenarioError(f"{path}: id {scenario.id!r} does not match the file name")
    return scenario


def load_all(directory: str = SCENARIO_DIR) -> list[Scenario]:
    scenarios = [load_file(os.path.join(directory, name)) for name in sorted(os.listdir(directory))
                 if name.endswith((".yaml", ".yml"))]
    seen: set[str] = set()
    for s in scenarios:
        if s.id in seen:
            raise ScenarioError(f"{s.path}: duplicate id {s.id!r}")
        seen.add(s.id)
    return sorted(scenarios, key=lambda s: (s.order, s.id))


def find(scenario_id: str, directory: str = SCENARIO_DIR) -> Scenario:
    for s in load_all(directory):
        if s.id == scenario_id:
            return s
    known = ", ".join(s.id for s in load_all(directory))
    raise ScenarioError(f"no scenario {scenario_id!r} (known: {known})")
