"""kubeadm's mark-control-plane phase (bootstrap/controlplane.py)."""

from kubelite.bootstrap.controlplane import CONTROL_PLANE_LABEL, EXCLUDE_FROM_LB_LABEL, marked


def node(labels=None, taints=None):
    return {"metadata": {"name": "master", "labels": labels or {"kubernetes.io/hostname": "master"}},
            "spec": {"taints": taints} if taints is not None else {}}


def test_init_labels_taints_and_excludes_from_load_balancers():
    new = marked(node(), taint=True, exclude_from_lb=True)
    assert new["metadata"]["labels"] == {"kubernetes.io/hostname": "master", CONTROL_PLANE_LABEL: "",
                                         EXCLUDE_FROM_LB_LABEL: ""}
    assert new["spec"]["taints"] == [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]


def test_up_only_labels():
    new = marked(node(), taint=False, exclude_from_lb=False)
    assert new["metadata"]["labels"][CONTROL_PLANE_LABEL] == ""
    assert "taints" not in new["spec"]


def test_already_marked_needs_nothing_and_a_removed_taint_stays_removed_for_up():
    done = node({CONTROL_PLANE_LABEL: ""}, [{"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}])
    assert marked(done, taint=True, exclude_from_lb=False) is None
    assert marked(node({CONTROL_PLANE_LABEL: ""}), taint=False, exclude_from_lb=False) is None


def test_other_taints_are_kept_and_odd_entries_dropped():
    new = marked(node(taints=[{"key": "a", "effect": "NoExecute"}, None]), taint=True, exclude_from_lb=False)
    assert new["spec"]["taints"] == [{"key": "a", "effect": "NoExecute"},
                                     {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
