"""StatefulSet decisions: ordered creation and scale-down, Parallel, rolling update with partition, identity."""

from __future__ import annotations

from kubelite.controllers import controllerhistory as ch
from kubelite.controllers import statefulset_util as su

NOW = 1_700_000_000.0


def sts(replicas=3, policy="OrderedReady", strategy=None, **spec):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "s1", "generation": 1},
            "spec": {"replicas": replicas, "podManagementPolicy": policy, "serviceName": "nginx",
                     "selector": {"matchLabels": {"app": "nginx"}},
                     "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}, **spec},
            "status": {}}


def pod(ordinal, ready=True, rev="web-new", phase="Running", deleting=False):
    p = {"metadata": {"name": f"web-{ordinal}", "namespace": "default", "uid": f"p{ordinal}",
                      "labels": {"app": "nginx", ch.HASH_LABEL: rev, su.POD_NAME_LABEL: f"web-{ordinal}",
                                 su.POD_INDEX_LABEL: str(ordinal)}},
         "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


def kinds(plan):
    return [(a.kind, a.ordinal) for a in plan.actions]


def test_ordered_ready_creates_one_at_a_time():
    s = sts()
    assert kinds(su.plan(s, [], "web-new", "web-new", NOW)) == [("create", 0)]
    # web-0 exists but is not Ready: nothing happens
    p = su.plan(s, [pod(0, ready=False)], "web-new", "web-new", NOW)
    assert kinds(p) == [] and "web-0" in p.waiting_for
    assert kinds(su.plan(s, [pod(0)], "web-new", "web-new", NOW)) == [("create", 1)]
    assert kinds(su.plan(s, [pod(0), pod(1)], "web-new", "web-new", NOW)) == [("create", 2)]
    assert kinds(su.plan(s, [pod(0), pod(1), pod(2)], "web-new", "web-new", NOW)) == []


def test_recreates_a_missing_lower_ordinal_first():
    assert kinds(su.plan(sts(), [pod(1), pod(2)], "web-new", "web-new", NOW)) == [("create", 0)]


def test_parallel_creates_all():
    assert kinds(su.plan(sts(policy="Parallel"), [], "r", "r", NOW)) == [("create", 0), ("create", 1), ("create", 2)]


def test_scale_down_highest_first_one_at_a_time():
    s = sts(replicas=1)
    pods = [pod(0), pod(1), pod(2)]
    assert kinds(su.plan(s, pods, "web-new", "web-new", NOW)) == [("delete", 2)]
    # web-2 still terminating: wait
    assert kinds(su.plan(s, [pod(0), pod(1), pod(2, deleting=True)], "web-new", "web-new", NOW)) == []
    assert kinds(su.plan(s, [pod(0), pod(1)], "web-new", "web-new", NOW)) == [("delete", 1)]
    # Parallel deletes all condemned at once
    assert kinds(su.plan(sts(replicas=1, policy="Parallel"), pods, "r", "web-new", NOW)) == [("delete", 2),
                                                                                             ("delete", 1)]


def test_failed_pod_is_replaced():
    p = su.plan(sts(replicas=1), [pod(0, phase="Failed", ready=False)], "web-new", "web-new", NOW)
    assert kinds(p) == [("delete", 0), ("create", 0)]


def test_rolling_update_from_highest_ordinal_respecting_partition():
    s = sts()
    old = [pod(0, rev="web-old"), pod(1, rev="web-old"), pod(2, rev="web-old")]
    assert kinds(su.plan(s, old, "web-old", "web-new", NOW)) == [("delete", 2)]
    # web-2 updated but not ready yet: wait
    assert kinds(su.plan(s, [old[0], old[1], pod(2, ready=False)], "web-old", "web-new", NOW)) == []
    assert kinds(su.plan(s, [old[0], old[1], pod(2)], "web-old", "web-new", NOW)) == [("delete", 1)]
    part = sts(strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert kinds(su.plan(part, [old[0], old[1], pod(2)], "web-old", "web-new", NOW)) == []
    # OnDelete never deletes for an update
    ondel = sts(strategy={"type": "OnDelete"})
    assert kinds(su.plan(ondel, old, "web-old", "web-new", NOW)) == []


def test_new_pods_below_partition_get_the_current_revision():
    part = sts(strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    a = su.plan(part, [], "web-old", "web-new", NOW).actions[0]
    assert (a.kind, a.revision) == ("create", "current")
    a = su.plan(part, [pod(0, rev="web-old"), pod(1, rev="web-old")], "web-old", "web-new", NOW).actions[0]
    assert (a.kind, a.ordinal, a.revision) == ("create", 2, "update")


def test_identity_and_storage_of_a_new_pod():
    s = sts(volumeClaimTemplates=[{"metadata": {"name": "www"},
                                   "spec": {"accessModes": ["ReadWriteOnce"],
                                            "resources": {"requests": {"storage": "1Gi"}}}}])
    ref = {"kind": "StatefulSet", "uid": "s1", "name": "web", "controller": True}
    p = su.new_pod(s, s["spec"]["template"], 1, "web-abc", ref)
    assert p["metadata"]["name"] == "web-1"
    assert p["metadata"]["labels"] == {"app": "nginx", su.POD_NAME_LABEL: "web-1", su.POD_INDEX_LABEL: "1",
                                       ch.HASH_LABEL: "web-abc"}
    assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == ("web-1", "nginx")
    assert p["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-1"}}]
    claims = su.new_claims(s, 1)
    assert [c["metadata"]["name"] for c in claims] == ["www-web-1"]
    assert claims[0]["metadata"]["labels"] == {"app": "nginx"}
    assert su.parent_and_ordinal({"metadata": {"name": "my-web-12"}}) == ("my-web", 12)
    assert su.identity_patch(s, pod(0)) is None
    broken = pod(0)
    del broken["metadata"]["labels"][su.POD_NAME_LABEL]
    assert su.identity_patch(s, broken) == {"metadata": {"labels": {su.POD_NAME_LABEL: "web-0"}}}


def test_status_counts_and_rolling_update_completion():
    s = sts()
    st = su.compute_status(s, [pod(0, rev="a"), pod(1, rev="b"), pod(2, rev="b", ready=False)], "a", "b", 0, NOW)
    assert st["replicas"] == 3 and st["readyReplicas"] == 2 and st["availableReplicas"] == 2
    assert (st["currentReplicas"], st["updatedReplicas"], st["currentRevision"]) == (1, 2, "a")
    st = su.compute_status(s, [pod(0, rev="b"), pod(1, rev="b"), pod(2, rev="b")], "a", "b", 0, NOW)
    assert (st["currentReplicas"], st["currentRevision"], st["updateRevision"]) == (3, "b", "b")
    assert st["collisionCount"] == 0 and st["observedGeneration"] == 1


def test_revision_hash_and_equality():
    s = sts()
    data = ch.template_patch(s["spec"]["template"])
    assert data["spec"]["template"]["$patch"] == "replace"
    r1 = ch.new_revision(s, "apps/v1", "StatefulSet", {"app": "nginx"}, data, 1, 0)
    r2 = ch.new_revision(s, "apps/v1", "StatefulSet", {"app": "nginx"}, data, 2, 0)
    assert r1["metadata"]["name"] == r2["metadata"]["name"] and r1["metadata"]["name"].startswith("web-")
    assert ch.equal_revision(r1, r2)
    assert ch.revision_hash(data, 0) != ch.revision_hash(data, 1)
    assert ch.template_of(r1) == s["spec"]["template"]
    assert ch.next_revision([r1, r2]) == 3
