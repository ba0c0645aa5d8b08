"""The CronJob controller (upstream's pkg/controller/cronjob, the v2 controller).

Each sync reconciles `status.active` with the Jobs the CronJob owns, then, unless suspended, finds the most
recent unmet activation of the schedule (in `spec.timeZone`, UTC by default) since `lastScheduleTime` (or
creation, bounded by `startingDeadlineSeconds`) and starts a Job `<cronjob>-<minutes since epoch>` for it,
honouring `concurrencyPolicy`; finished Jobs beyond the history limits are deleted.  The key is requeued for
the next activation.  "Now" comes from `config.extra["cronjob_clock"]` (epoch seconds) when set, so tests
can fire a schedule without waiting for it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubelite.client import OWNER_UID_INDEX, ClientError, key_of

from . import controller_utils as cu
from . import cronjob_util as cj
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.cronjob")

Obj = dict[str, Any]
NEXT_SCHEDULE_DELTA = 0.1  # upstream requeues 100 ms after the next activation


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _go_rfc3339(t: datetime) -> str:
    """Go's time.RFC3339 in t's zone: "Z" whenever the offset is zero, else ±hh:mm."""
    text = t.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if t.utcoffset() is not None and not t.utcoffset() else text


def job_from_template(cronjob: Obj, scheduled: datetime, tz: Any) -> Obj:
    tmpl = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = tmpl.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[cj.SCHEDULED_TIMESTAMP_ANNOTATION] = _go_rfc3339(scheduled.astimezone(tz))
    meta: Obj = {"name": cj.job_name(cronjob["metadata"]["name"], scheduled),
                 "namespace": cronjob["metadata"]["namespace"], "annotations": annotations,
                 "ownerReferences": [cu.owner_reference(cronjob, "batch/v1", "CronJob")]}
    if tmeta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": copy.deepcopy(tmpl.get("spec") or {})}


def job_reference(job: Obj) -> Obj:
    m = job["metadata"]
    return {"kind": "Job", "namespace": m["namespace"], "name": m["name"], "uid": m["uid"],
            "apiVersion": "batch/v1", "resourceVersion": m.get("resourceVersion", "")}


class CronJobController(Controller):
    name = "cronjob-controller"
    aliases = ("cronjob",)
    event_component = "cronjob-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=int(ctx.config.extra.get("concurrent_cron_job_syncs", 5)))
        self.cj_rt = ctx.rt("batch", "v1", "cronjobs")
        self.job_rt = ctx.rt("batch", "v1", "jobs")
        self.clock: Callable[[], float] = ctx.config.extra.get("cronjob_clock", time.time)
        self.cronjobs = self.informer(self.cj_rt)
        self.cronjobs.add_handler(self.enqueue, self._cronjob_updated, None)
        self.jobs = self.informer(self.job_rt)
        self.jobs.add_handler(self._job_changed, lambda old, new: self._job_changed(new), self._job_changed)

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _job_changed(self, job: Obj) -> None:
        ref = cu.controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        owner = self.cronjobs.get(job["metadata"].get("namespace"), ref.get("name", ""))
        if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
            self.enqueue(owner)

    # -- sync ------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cronjob = self.cronjobs.get_by_key(key)
        if cronjob is None:
            return
        uid = cronjob["metadata"]["uid"]
        jobs = [j for j in self.jobs.by_index(OWNER_UID_INDEX, uid) if (cu.controller_ref(j) or {}).get("uid") == uid]
        cronjob = copy.deepcopy(cronjob)
        status = cronjob.setdefault("status", {})
        before = copy.deepcopy(status)
        requeue = await self._sync_cronjob(cronjob, jobs)
        await self._cleanup_finished(cronjob, jobs)
        if not status.get("active"):
            status.pop("active", None)
        if status != before:
            try:
                await self.client.update_status(self.cj_rt, cronjob)
            except ClientError as e:
                if not e.is_not_found:
                    raise
        if requeue is not None:
            self.enqueue_after(key, requeue)

    async def _sync_cronjob(self, cronjob: Obj, jobs: list[Obj]) -> float | None:
        """One reconciliation (mutates cronjob.status); returns when to look again (seconds) or None."""
        status = cronjob["status"]
        now = datetime.fromtimestamp(self.clock(), UTC)
        children = {j["metadata"]["uid"] for j in jobs}
        active = status.setdefault("active", [])
        for j in jobs:
            juid = j["metadata"]["uid"]
            found = any(r.get("uid") == juid for r in active)
            finished, cond = cj.job_finished(j)
            if not found and not finished:
                self.recorder.event(cronjob, "Warning", "UnexpectedJob",
                                    f"Saw a job that the controller did not create or forgot: {j['metadata']['name']}")
            elif found and finished:
                active[:] = [r for r in active if r.get("uid") != juid]
                self.recorder.event(cronjob, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {j['metadata']['name']}, condition: {cond}")
            if finished and cond == "Complete":
                done = (j.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (last is None or (cu.timestamp(done) or 0) > (cu.timestamp(last) or 0)):
                    status["lastSuccessfulTime"] = done
        for ref in list(active):
            if ref.get("uid") in children:
                continue
            try:
                await self.client.get(self.job_rt, ref.get("namespace"), ref.get("name", ""))
                continue
            except ClientError as e:
                if not e.is_not_found:
                    raise
            self.recorder.event(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
            active.remove(ref)

        if cronjob["metadata"].get("deletionTimestamp"):
            return None
        spec = cronjob.get("spec") or {}
        tz_name = spec.get("timeZone")
        try:
            tz = cj.load_zone(tz_name) if tz_name else UTC
        except cj.ScheduleError as e:
            self.recorder.event(cronjob, "Warning", "UnknownTimeZone", f"invalid timeZone: {tz_name!r}: {e}")
            return None
        if spec.get("suspend"):
            return None
        schedule_text = spec.get("schedule") or ""
        try:
            schedule = cj.parse_schedule(schedule_text)
        except cj.ScheduleError as e:
            self.recorder.event(cronjob, "Warning", "UnparseableSchedule",
                                f"unparseable schedule: {schedule_text!r} : {e}")
            return None

        def next_in() -> float | None:
            nxt = schedule.next(now, tz)
            return None if nxt is None else (nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA

        earliest_ts = cu.timestamp(status.get("lastScheduleTime")) or cu.timestamp(
            cronjob["metadata"].get("creationTimestamp")) or now.timestamp()
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest_ts = max(earliest_ts, now.timestamp() - int(deadline))
        earliest = datetime.fromtimestamp(earliest_ts, UTC)
        if earliest > now:
            return next_in()
        scheduled, missed = cj.most_recent_schedule(schedule, earliest, now, tz)
        if missed > cj.TOO_MANY_MISSED:
            self.recorder.event(cronjob, "Warning", "TooManyMissedTimes",
                                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                                "or check clock skew")
        if scheduled is None:
            return next_in()
        if deadline is not None and scheduled.timestamp() + int(deadline) < now.timestamp():
            self.recorder.event(cronjob, "Warning", "MissSchedule",
                                f"Missed scheduled time to start a job: {cj.format_rfc1123z(scheduled)}")
            return next_in()
        name = cj.job_name(cronjob["metadata"]["name"], scheduled)
        if any(r.get("name") == name for r in active) or \
                cu.timestamp(status.get("lastScheduleTime")) == scheduled.timestamp():
            return next_in()
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(cronjob, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and concurrency policy is "
                                "Forbid")
            return next_in()
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(cronjob, ref.get("namespace"), ref.get("name", ""))
                active.remove(ref)
        try:
            created = await self.client.create(self.job_rt, job_from_template(cronjob, scheduled, tz),
                                               cronjob["metadata"]["namespace"])
        except ClientError as e:
            if e.is_already_exists:
                log.info("cronjob %s: job %s already exists", key_of(cronjob), name)
                return None
            self.recorder.event(cronjob, "Warning", "FailedCreate", f"Error creating job: {e.message}")
            raise
        self.recorder.event(cronjob, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        active.append(job_reference(created))
        status["lastScheduleTime"] = _rfc3339(scheduled)
        return next_in()

    async def _delete_job(self, cronjob: Obj, namespace: str | None, name: str) -> bool:
        try:
            await self.client.delete(self.job_rt, namespace, name, propagation_policy="Background")
        except ClientError as e:
            if e.is_not_found:
                return False
            self.recorder.event(cronjob, "Warning", "FailedDelete", f"Deleted job: {e.message}")
            raise
        self.recorder.event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {name}")
        return True

    async def _cleanup_finished(self, cronjob: Obj, jobs: list[Obj]) -> None:
        spec = cronjob.get("spec") or {}
        ok_limit, failed_limit = spec.get("successfulJobsHistoryLimit"), spec.get("failedJobsHistoryLimit")
        if ok_limit is None and failed_limit is None:
            return
        ok, failed = [], []
        for j in jobs:
            finished, cond = cj.job_finished(j)
            if finished and not j["metadata"].get("deletionTimestamp"):
                (ok if cond == "Complete" else failed).append(j)
        active = cronjob["status"].get("active") or []
        for group, limit in ((ok, ok_limit), (failed, failed_limit)):
            if limit is None or len(group) <= int(limit):
                continue
            group.sort(key=lambda j: ((j.get("status") or {}).get("startTime") is not None,
                                      (j.get("status") or {}).get("startTime") or "", j["metadata"]["name"]))
            for j in group[:len(group) - int(limit)]:
                await self._delete_job(cronjob, j["metadata"]["namespace"], j["metadata"]["name"])
                active[:] = [r for r in active if r.get("uid") != j["metadata"]["uid"]]


__all__ = ["CronJobController", "job_from_template"]
