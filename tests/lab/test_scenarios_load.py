"""The scenario files and their loader: every shipped scenario parses, and malformed ones are refused."""

from __future__ import annotations

import pytest

from kubelite.lab.model import ScenarioError, find, load_all, parse_scenario, text

MINIMAL = {
    "id": "x", "title": {"en": "t", "zh": "题"}, "technique": {"id": "MS-TA9029"}, "difficulty": "easy",
    "story": {"en": "s", "zh": "故"},
    "attack": [{"title": {"en": "a", "zh": "攻"}, "run": {"kind": "http", "path": "/api"},
                "succeeds_if": {"status": 200}}],
    "defense": {"title": {"en": "d", "zh": "防"}, "explain": {"en": "e", "zh": "释"}},
    "evidence": {"audit": [{"user": "system:anonymous"}]},
}


def test_every_shipped_scenario_loads_with_both_languages():
    scenarios = load_all()
    assert len(scenarios) >= 15
    ids = [s.id for s in scenarios]
    assert len(ids) == len(set(ids))
    assert ids[0] == "anonymous-admin"  # what the course teaches first
    for s in scenarios:
        assert s.technique["id"].startswith("MS-TA9"), s.id
        for lang in ("en", "zh"):
            assert text(s.story, lang).strip() and text(s.defense["explain"], lang).strip(), (s.id, lang)
            for step in s.attack:
                assert text(step.title, lang), (s.id, lang)
        assert any(step.succeeds_if for step in s.attack), s.id
        assert s.evidence["audit"], s.id


def test_defended_flags_replace_the_weak_ones():
    s = find("anonymous-admin")
    assert s.weak_flags() == ["--anonymous-auth=true"]
    assert s.defended_flags() == ["--anonymous-auth=false"]
    k = find("kubelet-anonymous")
    assert "--kubelet-arg=anonymous-auth=true" in k.weak_flags()
    assert k.defended_flags() == []


def test_minimal_scenario_parses():
    s = parse_scenario(MINIMAL)
    assert s.id == "x" and s.difficulty == "easy" and not s.needs_containers


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("evidence"), "evidence.audit"),
    (lambda d: d["story"].pop("zh"), "story.zh"),
    (lambda d: d.update(difficulty="trivial"), "difficulty"),
    (lambda d: d["technique"].update(id="T1234"), "technique.id"),
    (lambda d: d["attack"][0]["run"].update(kind="ssh"), "run.kind"),
    (lambda d: d["attack"][0].pop("succeeds_if"), "nothing decides"),
    (lambda d: d["attack"][0].update(succeeds_if={"stauts": 200}), "unknown keys"),
    (lambda d: d["attack"][0]["run"].update(kind="kubectl"), "run.args"),
])
def test_malformed_scenarios_are_refused(change, message):
    import copy

    doc = copy.deepcopy(MINIMAL)
    change(doc)
    with pytest.raises(ScenarioError, match=message.replace(".", r"\.")):
        parse_scenario(doc, "bad.yaml")


def test_unknown_scenario_names_the_known_ones():
    with pytest.raises(ScenarioError, match="anonymous-admin"):
        find("no-such-scenario")
