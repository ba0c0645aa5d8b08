"""A row the printer cannot build is its name and <unknown> cells; the other rows are printed as usual."""

from __future__ import annotations

import pytest

from kubelite.api import printers_more  # noqa: F401  (registers the remaining printers)
from kubelite.api.printers import PRINTERS
from kubelite.api.resources import BUILTIN
from kubelite.api.tables import to_table


def _rt(group: str, kind: str):
    return next(rt for rt in BUILTIN if rt.group == group and rt.kind == kind)


BAD = {
    ("", "Pod"): {"spec": {"readinessGates": [None], "containers": [None]}, "status": {"conditions": [None]}},
    ("", "Endpoints"): {"subsets": [None, {"addresses": [None], "ports": [None]}]},
    ("apps", "ReplicaSet"): {"spec": {"template": {"spec": {"containers": [None]}}, "selector": "x"}},
    ("autoscaling", "HorizontalPodAutoscaler"): {"spec": {"metrics": [None], "scaleTargetRef": None}},
    ("discovery.k8s.io", "EndpointSlice"): {"endpoints": [None], "ports": [None]},
    ("networking.k8s.io", "Ingress"): {"spec": {"rules": [None], "tls": [None]}, "status": {"loadBalancer": {"ingress": [None]}}},
    ("", "Node"): {"spec": {"taints": [None]}, "status": {"conditions": [None], "addresses": [None]}},
}


@pytest.mark.parametrize("key", sorted(BAD))
def test_a_bad_object_costs_one_row(key):
    rt = _rt(*key)
    good = {"metadata": {"name": "good", "namespace": "n", "creationTimestamp": "2024-01-01T00:00:00Z"}}
    bad = {"metadata": {"name": "bad", "namespace": "n"}, **BAD[key]}
    table = to_table(rt, [good, bad, dict(good, metadata=dict(good["metadata"], name="good2"))])
    names = [row["cells"][0] for row in table["rows"]]
    assert names == ["good", "bad", "good2"]
    width = len(PRINTERS[key].columns)
    assert all(len(row["cells"]) == width for row in table["rows"])
