"""The Job controller and the TTL-after-finished controller (upstream's pkg/controller/job, pkg/controller/ttlafterfinished).

Pods carry the `batch.kubernetes.io/job-tracking` finalizer; a pod that terminated is first recorded in
`status.uncountedTerminatedPods`, then its finalizer is removed, then it moves into `succeeded` / `failed`
(and `completedIndexes`), so nothing is counted twice or lost across restarts.  A Job that reaches its
completions gets `SuccessCriteriaMet`, one that exceeds `backoffLimit` or `activeDeadlineSeconds` gets
`FailureTarget`; the terminal `Complete` / `Failed` follows once no pod is left running.  Replacements of
failed pods wait an exponential back-off (10 s doubling, at most 10 min).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from kubelite.api.selectors import SelectorError, try_label_selector_from_dict
from kubelite.client import OWNER_UID_INDEX, ClientError, key_of

from . import controller_utils as cu
from . import job_util as ju
from .manager import Controller, ControllerContext
from .replicaset import is_namespace_terminating_error

log = logging.getLogger("kubelite.controllers.job")

Obj = dict[str, Any]


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class JobController(Controller):
    name = "job-controller"
    aliases = ("job",)
    event_component = "job-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=int(ctx.config.extra.get("concurrent_job_syncs", 5)))
        self.job_rt = ctx.rt("batch", "v1", "jobs")
        self.pods_rt = ctx.rt("", "v1", "pods")
        self.clock: Callable[[], float] = ctx.config.extra.get("job_clock", time.time)
        self.backoff_base = float(ctx.config.extra.get("job_backoff_base", ju.DEFAULT_BACKOFF))
        self.backoff_max = float(ctx.config.extra.get("job_backoff_max", ju.MAX_BACKOFF))
        self.expectations = cu.Expectations(ctx.config.expectations_timeout)
        self.burst = ctx.config.burst_replicas
        # uids whose finalizer we removed but the informer may still show (they are counted already)
        self.finalizers_removed: dict[str, set[str]] = {}
        # the newest Job status we wrote, used while the informer lags behind it
        self.written: dict[str, Obj] = {}
        # consecutive failures since the last success, and when the last one happened (per Job key)
        self.backoff: dict[str, tuple[int, float]] = {}
        self.jobs = self.informer(self.job_rt)
        self.jobs.add_handler(self.enqueue, self.enqueue_update, self._job_deleted)
        self.pods = self.informer(self.pods_rt)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- handlers -----------------------------------------------------------------------------------------

    def _job_deleted(self, job: Obj) -> None:
        key = key_of(job)
        self.expectations.delete(key)
        self.finalizers_removed.pop(key, None)
        self.written.pop(key, None)
        self.backoff.pop(key, None)
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = cu.controller_ref(pod)
        if ref is None or ref.get("kind") != "Job":
            return None
        job = self.jobs.get(pod["metadata"].get("namespace"), ref.get("name", ""))
        if job is None or job["metadata"].get("uid") != ref.get("uid"):
            return None
        return key_of(job)

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = self._owner_key(new)
        if key is None:
            return
        if not ju.has_finalizer(new):
            self.finalizers_removed.get(key, set()).discard(new["metadata"].get("uid"))
        self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        self.finalizers_removed.get(key, set()).discard(pod["metadata"].get("uid"))
        self.expectations.deletion_observed(key, key_of(pod))
        self.queue.add(key)

    # -- sync -----------------------------------------------------------------------------------------------

    def _current(self, key: str) -> Obj | None:
        job = self.jobs.get_by_key(key)
        if job is None:
            return None
        mine = self.written.get(key)
        if mine is not None and mine["metadata"].get("uid") == job["metadata"].get("uid") and _rv(mine) > _rv(job):
            return mine
        self.written.pop(key, None)
        return job

    async def sync(self, key: str) -> None:
        job = self._current(key)
        if job is None:
            self.expectations.delete(key)
            return
        try:
            selector = try_label_selector_from_dict(ju.effective_selector(job))
        except SelectorError:
            return
        now = self.clock()
        uid = job["metadata"]["uid"]
        pods = [p for p in self.pods.by_index(OWNER_UID_INDEX, uid)
                if (cu.controller_ref(p) or {}).get("uid") == uid and selector.matches(p["metadata"].get("labels") or {})]
        if ju.is_finished(job):
            # a finished Job lets go of every pod it still tracks
            await self._remove_finalizers(key, [p for p in pods if ju.has_finalizer(p)])
            return
        if not self.expectations.satisfied(key):
            return
        await self._sync_job(key, job, pods, now)

    async def _sync_job(self, key: str, job: Obj, pods: list[Obj], now: float) -> None:
        status = copy.deepcopy(job.get("status") or {})
        before = copy.deepcopy(status)
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        unc_succ: list[str] = list(uncounted.get("succeeded") or [])
        unc_fail: list[str] = list(uncounted.get("failed") or [])
        indexed = ju.is_indexed(job)
        completed = ju.parse_indexes(status.get("completedIndexes"), ju.completions(job)) if indexed else set()
        finishing = ju.condition(status, "FailureTarget") or ju.condition(status, "SuccessCriteriaMet")
        removed = self.finalizers_removed.setdefault(key, set())

        # 1. terminated pods still carrying the finalizer become "uncounted"
        to_release: list[Obj] = []
        new_failures: list[Obj] = []
        new_success = False
        for p in pods:
            puid = p["metadata"]["uid"]
            if not ju.has_finalizer(p) or puid in removed:
                continue
            failed = ju.is_pod_failed(p, job)
            succeeded = ju.is_pod_succeeded(p)
            if not (p["metadata"].get("deletionTimestamp") or failed or succeeded or finishing):
                continue
            to_release.append(p)
            if puid in unc_succ or puid in unc_fail:
                continue
            if succeeded:
                idx = ju.valid_index(p, job) if indexed else None
                if indexed and (idx is None or idx in completed):
                    continue
                unc_succ.append(puid)
                new_success = True
            elif failed or (finishing and finishing.get("type") == "FailureTarget"):
                unc_fail.append(puid)
                new_failures.append(p)
        self._record_backoff(key, new_success, new_failures, now)
        uncounted["succeeded"], uncounted["failed"] = unc_succ, unc_fail
        if not unc_succ:
            uncounted.pop("succeeded")
        if not unc_fail:
            uncounted.pop("failed")

        by_uid = {p["metadata"]["uid"]: p for p in pods}
        # indexes of succeeded pods not counted yet still count for the decisions below
        succ_indexes = set(completed)
        if indexed:
            for u in unc_succ:
                i = ju.valid_index(by_uid[u], job) if u in by_uid else None
                if i is not None:
                    succ_indexes.add(i)
        succeeded = int(status.get("succeeded") or 0) + len(unc_succ)
        failed = int(status.get("failed") or 0) + len(unc_fail)

        active = [p for p in pods if cu.is_pod_active(p)]
        if not status.get("startTime") and not ju.is_suspended(job):
            status["startTime"] = cu.now_rfc3339(now)

        # 2. does the Job reach a terminal state?
        deletes: list[Obj] = []
        creates: list[int | None] = []
        if finishing is None:
            reason = None
            if failed > ju.backoff_limit(job) or ju.past_backoff_limit_on_failure(job, active):
                reason = ju.BACKOFF_LIMIT_EXCEEDED
            elif self._past_deadline(job, status, now):
                reason = ju.DEADLINE_EXCEEDED
            if reason is not None:
                finishing = ju.new_condition("FailureTarget", reason[0], reason[1], now)
                ju.set_condition(status, finishing)
            elif not ju.is_suspended(job) and ju.is_complete(job, succeeded, succ_indexes, len(active)):
                finishing = ju.new_condition("SuccessCriteriaMet", *ju.COMPLETIONS_REACHED, now)
                ju.set_condition(status, finishing)
        if finishing is not None:
            deletes = active
        elif ju.is_suspended(job):
            deletes = active
            if ju.set_condition(status, ju.new_condition("Suspended", "JobSuspended", "Job suspended", now)):
                self.recorder.event(job, "Normal", "Suspended", "Job suspended")
        else:
            if ju.condition(status, "Suspended") is not None:
                ju.set_condition(status, ju.new_condition("Suspended", "JobResumed", "Job resumed", now, "False"))
                self.recorder.event(job, "Normal", "Resumed", "Job resumed")
                status["startTime"] = cu.now_rfc3339(now)
            deletes, creates = self._manage(key, job, active, succeeded, succ_indexes, now)

        # 3. write what was learnt before acting on the pods (the uncounted uids survive a crash)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if cu.is_pod_ready(p))
        status["terminating"] = sum(1 for p in pods if cu.is_pod_terminating(p))
        if status != before:
            job = await self._write_status(key, job, status)
            status = copy.deepcopy(job.get("status") or {})

        await self._delete_pods(key, job, deletes)
        created = await self._create_pods(key, job, creates)
        released = await self._remove_finalizers(key, to_release)

        # 4. move released pods from uncounted into the counters
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        for field, counter in (("succeeded", "succeeded"), ("failed", "failed")):
            keep = []
            for u in uncounted.get(field) or []:
                p = by_uid.get(u)
                if p is None or u in released or not ju.has_finalizer(p):
                    status[counter] = int(status.get(counter) or 0) + 1
                    if field == "succeeded" and indexed and p is not None:
                        i = ju.valid_index(p, job)
                        if i is not None:
                            completed.add(i)
                else:
                    keep.append(u)
            if keep:
                uncounted[field] = keep
            else:
                uncounted.pop(field, None)
        if indexed:
            text = ju.format_indexes(completed)
            if text:
                status["completedIndexes"] = text
        status["active"] = len(active) - len(deletes) + created
        status["terminating"] = status["terminating"] + len(deletes)
        if finishing is not None and not status["active"] and not status["terminating"] \
                and not uncounted.get("succeeded") and not uncounted.get("failed"):
            self._finish(job, status, finishing, now)
        if status != (job.get("status") or {}):
            await self._write_status(key, job, status)
        if finishing is None and not ju.is_suspended(job):
            deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
            start = cu.timestamp(status.get("startTime"))
            if deadline is not None and start is not None:
                self.enqueue_after(key, max(start + int(deadline) - now, 0) + 0.05)

    def _finish(self, job: Obj, status: Obj, target: Obj, now: float) -> None:
        if target["type"] == "SuccessCriteriaMet":
            ju.set_condition(status, ju.new_condition("Complete", target["reason"], target["message"], now))
            status["completionTime"] = cu.now_rfc3339(now)
            self.recorder.event(job, "Normal", "Completed", "Job completed")
        else:
            ju.set_condition(status, ju.new_condition("Failed", target["reason"], target["message"], now))
            self.recorder.event(job, "Warning", target["reason"], target["message"])

    def _past_deadline(self, job: Obj, status: Obj, now: float) -> bool:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        start = cu.timestamp(status.get("startTime"))
        if deadline is None or start is None or ju.is_suspended(job):
            return False
        return now - start >= int(deadline)

    def _record_backoff(self, key: str, new_success: bool, new_failures: list[Obj], now: float) -> None:
        count, last = self.backoff.get(key, (0, 0.0))
        if new_success and not new_failures:
            count = 0
        for p in new_failures:
            count += 1
            last = max(last, ju.failure_time(p, now))
        if count:
            self.backoff[key] = (count, last)
        else:
            self.backoff.pop(key, None)

    def _manage(self, key: str, job: Obj, active: list[Obj], succeeded: int, succ_indexes: set[int],
                now: float) -> tuple[list[Obj], list[int | None]]:
        """(pods to delete, pods to create: an index each in Indexed mode, else None)."""
        n_succeeded = len(succ_indexes) if ju.is_indexed(job) else succeeded
        want = ju.want_active(job, n_succeeded, len(active))
        victims = ju.surplus_pods(job, active, want, now)
        if victims:
            return victims, []
        diff = min(want - len(active), self.burst)
        if diff <= 0:
            return [], []
        if (job.get("spec") or {}).get("podReplacementPolicy") == "Failed" and any(
                cu.is_pod_terminating(p) for p in self.pods.by_index(OWNER_UID_INDEX, job["metadata"]["uid"])):
            return [], []
        count, last = self.backoff.get(key, (0, 0.0))
        wait = ju.remaining_backoff(count, last, now, self.backoff_base, self.backoff_max)
        if wait > 0:
            self.enqueue_after(key, wait)
            return [], []
        if ju.is_indexed(job):
            active_idx = {i for p in active if (i := ju.valid_index(p, job)) is not None}
            return [], list(ju.pending_indexes(job, succ_indexes, active_idx, diff))
        return [], [None] * diff

    # -- API calls -----------------------------------------------------------------------------------------

    async def _write_status(self, key: str, job: Obj, status: Obj) -> Obj:
        obj = copy.deepcopy({k: v for k, v in job.items() if k != "status"})
        obj["status"] = status
        try:
            written = await self.client.update_status(self.job_rt, obj)
        except ClientError as e:
            if e.is_conflict:
                self.written.pop(key, None)
            raise
        self.written[key] = written
        return written

    async def _create_pods(self, key: str, job: Obj, creates: list[int | None]) -> int:
        if not creates:
            return 0
        self.expectations.expect_creations(key, len(creates))
        pending = list(creates)
        ns = job["metadata"]["namespace"]

        async def create_one() -> None:
            pod = await self.client.create(self.pods_rt, ju.new_pod(job, pending.pop(0)), ns)
            self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

        async def guarded() -> None:
            try:
                await create_one()
            except ClientError as e:
                if is_namespace_terminating_error(e):
                    return
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise

        successes, error = await cu.slow_start(len(creates), guarded)
        if len(creates) - successes:
            self.expectations.creation_observed(key, len(creates) - successes)
        if error is not None:
            raise error
        return successes

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        async def delete_one(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(self.pods_rt, pod["metadata"]["namespace"], name,
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except ClientError as e:
                if e.is_not_found or e.is_conflict:
                    return
                self.recorder.event(job, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                raise
            self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

        results = await asyncio.gather(*(delete_one(p) for p in pods), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _remove_finalizers(self, key: str, pods: list[Obj]) -> set[str]:
        """Remove the tracking finalizer; returns the uids now free of it (or gone)."""
        done: set[str] = set()
        removed = self.finalizers_removed.setdefault(key, set())

        async def one(pod: Obj) -> None:
            uid = pod["metadata"]["uid"]
            finalizers = [f for f in pod["metadata"].get("finalizers") or () if f != ju.TRACKING_FINALIZER]
            patch = [{"op": "test", "path": "/metadata/uid", "value": uid},
                     {"op": "replace", "path": "/metadata/finalizers", "value": finalizers}]
            try:
                await self.client.patch(self.pods_rt, pod["metadata"]["namespace"], pod["metadata"]["name"], patch,
                                        patch_type="json")
            except ClientError as e:
                if not (e.is_not_found or e.is_invalid or e.code == 422):
                    raise
            done.add(uid)
            removed.add(uid)

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return done


class TTLAfterFinishedController(Controller):
    """Deletes finished Jobs `ttlSecondsAfterFinished` after they finished (cascading in the foreground)."""

    name = "ttl-after-finished-controller"
    aliases = ("ttl-after-finished",)
    event_component = "ttl-after-finished-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=int(ctx.config.extra.get("concurrent_ttl_after_finished_syncs", 5)))
        self.job_rt = ctx.rt("batch", "v1", "jobs")
        self.clock: Callable[[], float] = ctx.config.extra.get("job_clock", time.time)
        self.jobs = self.informer(self.job_rt)
        self.jobs.add_handler(self._changed, lambda old, new: self._changed(new), None)

    def _changed(self, job: Obj) -> None:
        if (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None and ju.is_finished(job) \
                and not job["metadata"].get("deletionTimestamp"):
            self.enqueue(job)

    def _remaining(self, job: Obj, now: float) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or not ju.is_finished(job) or job["metadata"].get("deletionTimestamp"):
            return None
        finished = ju.finished_time(job)
        if finished is None:
            return None
        return finished + int(ttl) - now

    async def sync(self, key: str) -> None:
        job = self.jobs.get_by_key(key)
        if job is None:
            return
        left = self._remaining(job, self.clock())
        if left is None:
            return
        if left > 0:
            self.enqueue_after(key, left)
            return
        # the cache may be stale: re-check on a fresh copy before deleting
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        try:
            fresh = await self.client.get(self.job_rt, ns, name)
        except ClientError as e:
            if e.is_not_found:
                return
            raise
        left = self._remaining(fresh, self.clock())
        if left is None:
            return
        if left > 0:
            self.enqueue_after(key, left)
            return
        try:
            await self.client.delete(self.job_rt, ns, name, propagation_policy="Foreground",
                                     preconditions={"uid": fresh["metadata"]["uid"],
                                                    "resourceVersion": fresh["metadata"]["resourceVersion"]})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise


__all__ = ["JobController", "TTLAfterFinishedController"]
