"""Job decisions: back-off, active pods wanted, completion in both modes, indexes, the pods it creates."""

from __future__ import annotations

from kubelite.controllers import job_util as ju

NOW = 1_700_000_000.0


def job(**spec):
    return {"metadata": {"name": "pi", "namespace": "default", "uid": "j1"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "pi", "image": "perl"}]}}, **spec}}


def test_backoff_doubles_and_is_capped():
    assert [ju.backoff_delay(n) for n in range(5)] == [0, 10, 20, 40, 80]
    assert ju.backoff_delay(20) == ju.MAX_BACKOFF
    assert ju.remaining_backoff(2, NOW - 5, NOW) == 15
    assert ju.remaining_backoff(1, NOW - 30, NOW) == 0
    assert ju.remaining_backoff(0, None, NOW) == 0


def test_want_active_and_completion():
    j = job(completions=5, parallelism=2)
    assert ju.want_active(j, succeeded=0, active=0) == 2
    assert ju.want_active(j, succeeded=4, active=1) == 1
    assert ju.want_active(j, succeeded=5, active=0) == 0
    assert ju.is_complete(j, 5, set(), 0) and not ju.is_complete(j, 4, set(), 1)
    work_queue = job(parallelism=3)  # completions unset: done once one succeeded and none is active
    assert ju.want_active(work_queue, 0, 0) == 3 and ju.want_active(work_queue, 1, 2) == 2
    assert not ju.is_complete(work_queue, 1, set(), 2) and ju.is_complete(work_queue, 1, set(), 0)
    indexed = job(completions=3, parallelism=3, completionMode="Indexed")
    assert ju.is_complete(indexed, 0, {0, 1, 2}, 0) and not ju.is_complete(indexed, 5, {0, 2}, 0)
    assert ju.pending_indexes(indexed, {1}, {0}, 5) == [2]


def test_backoff_limit_on_failure_counts_restarts():
    j = job(backoffLimit=2)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    p = {"metadata": {}, "status": {"containerStatuses": [{"restartCount": 1}]}}
    assert not ju.past_backoff_limit_on_failure(j, [p])
    p["status"]["containerStatuses"][0]["restartCount"] = 2
    assert ju.past_backoff_limit_on_failure(j, [p])
    assert not ju.past_backoff_limit_on_failure(job(backoffLimit=0), [p])  # Never: pod failures count instead


def test_failed_pod_rules():
    j = job()
    deleted = {"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}}
    assert ju.is_pod_failed({"metadata": {}, "status": {"phase": "Failed"}}, j)
    assert ju.is_pod_failed(deleted, j)
    assert not ju.is_pod_failed(deleted, job(podReplacementPolicy="Failed"))
    assert not ju.is_pod_failed({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Succeeded"}}, j)


def test_indexes_format_and_parse():
    assert ju.format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert ju.format_indexes([]) == ""
    assert ju.parse_indexes("0-2,4,6-7") == {0, 1, 2, 4, 6, 7}
    assert ju.parse_indexes("1,5-9", limit=7) == {1, 5, 6}


def test_pods_created_for_a_job():
    p = ju.new_pod(job(), None)
    assert p["metadata"]["generateName"] == "pi-"
    assert p["metadata"]["finalizers"] == [ju.TRACKING_FINALIZER]
    assert p["metadata"]["labels"] == {"app": "pi", ju.CONTROLLER_UID_LABEL: "j1", ju.JOB_NAME_LABEL: "pi",
                                       "controller-uid": "j1", "job-name": "pi"}
    ref = p["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("Job", "pi", "j1", True)
    p = ju.new_pod(job(completions=3, completionMode="Indexed"), 2)
    assert p["metadata"]["generateName"] == "pi-2-"
    assert p["metadata"]["annotations"][ju.COMPLETION_INDEX] == "2"
    assert p["metadata"]["labels"][ju.COMPLETION_INDEX] == "2"
    assert p["spec"]["hostname"] == "pi-2"
    assert p["spec"]["containers"][0]["env"][0]["name"] == "JOB_COMPLETION_INDEX"
    assert ju.pod_index(p) == 2
    assert ju.effective_selector(job()) == {"matchLabels": {ju.CONTROLLER_UID_LABEL: "j1"}}


def test_surplus_pods_in_indexed_mode():
    j = job(completions=3, parallelism=3, completionMode="Indexed")

    def p(name, idx):
        return {"metadata": {"name": name, "uid": name, "annotations": {ju.COMPLETION_INDEX: str(idx)},
                             "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {}, "status": {}}

    victims = ju.surplus_pods(j, [p("a", 0), p("b", 0), p("c", 7)], 3, NOW)
    assert sorted(v["metadata"]["name"] for v in victims) in (["a", "c"], ["b", "c"])
