"""Cron schedules and the CronJob controller's decisions (upstream's pkg/controller/cronjob/utils.go, and the
robfig/cron v3 standard parser it uses).

`parse_schedule("*/5 9-17 * * mon-fri")` → `Schedule` with `next(after)` in a time zone.  Five fields
(minute hour day-of-month month day-of-week): `*` / `?`, numbers, names (jan…dec, sun…sat), ranges `a-b`,
steps `*/n`, `a-b/n`, `a/n` (a to the maximum), lists; or one of `@yearly @annually @monthly @weekly @daily
@midnight @hourly` and `@every <duration>`.  When both day fields are restricted a day matches either
(cron's OR); when one of them starts with `*` both must match.  `TZ=` / `CRON_TZ=` prefixes are parsed (as
robfig does) but the API server rejects them in CronJobs: `spec.timeZone` is the way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100

_MONTHS = {n: i + 1 for i, n in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                           "nov", "dec"))}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (min, max, names) per field
_BOUNDS = ((0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS))
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    values: frozenset[int]
    star: bool  # began with * or ? and had no step > 1 (robfig's starBit)


def _number(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ScheduleError(f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax")
    return int(text)


def _parse_field(expr: str, idx: int) -> Field:
    lo, hi, names = _BOUNDS[idx]
    values: set[int] = set()
    star = False
    for part in expr.split(","):
        if not part:
            raise ScheduleError(f"empty expression in {_FIELD_NAMES[idx]} field")
        range_part, _, step_text = part.partition("/")
        if "/" in step_text:
            raise ScheduleError(f"too many slashes: {part}")
        part_star = False
        if range_part in ("*", "?"):
            start, end = lo, hi
            part_star = True
        else:
            a, dash, b = range_part.partition("-")
            if "-" in b:
                raise ScheduleError(f"too many hyphens: {part}")
            start = _number(a, names)
            end = _number(b, names) if dash else start
        step = 1
        if step_text or part.endswith("/"):
            step = _number(step_text, None) if step_text else 0
            if step <= 0:
                raise ScheduleError(f"step of range should be a positive number: {part}")
            if range_part not in ("*", "?") and "-" not in range_part:
                end = hi  # "N/step" means N to the maximum
            if step > 1:
                part_star = False
        if start < lo:
            raise ScheduleError(f"beginning of range ({start}) below minimum ({lo}): {part}")
        if end > hi:
            raise ScheduleError(f"end of range ({end}) above maximum ({hi}): {part}")
        if start > end:
            raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
        star = star or part_star
    return Field(frozenset(values), star)


@dataclass(frozen=True)
class Schedule:
    minute: Field
    hour: Field
    dom: Field
    month: Field
    dow: Field
    tz: tzinfo | None = None  # from a TZ= / CRON_TZ= prefix
    every: timedelta | None = None  # @every

    def _day_matches(self, d: datetime) -> bool:
        dom = d.day in self.dom.values
        dow = (d.isoweekday() % 7) in self.dow.values
        if self.dom.star or self.dow.star:
            return dom and dow
        return dom or dow

    def next(self, after: datetime, tz: tzinfo | None = None) -> datetime | None:
        """The first activation strictly after `after` (aware), as an aware UTC datetime; None if there is
        none within five years (e.g. Feb 30)."""
        if self.every is not None:
            # robfig: at least a second, truncated to whole seconds, added to `after` truncated likewise
            step = timedelta(seconds=max(int(self.every.total_seconds()), 1))
            return after.astimezone(UTC).replace(microsecond=0) + step
        zone = self.tz or tz or UTC
        local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        limit = local.year + 5
        t = local
        while t.year <= limit:
            if t.month not in self.month.values:
                t = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
                continue
            if not self._day_matches(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if t.hour not in self.hour.values:
                t = datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
                continue
            if t.minute not in self.minute.values:
                t += timedelta(minutes=1)
                continue
            aware = _localize(t, zone)
            if aware is not None and aware > after:
                return aware.astimezone(UTC)
            t += timedelta(minutes=1)
        return None


def _localize(naive: datetime, zone: tzinfo) -> datetime | None:
    """Wall time → aware (the first of two in a DST fall-back); None for a time a DST jump skips, which
    never fires (robfig steps over it by whole hours)."""
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return aware


_EVERY_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _parse_duration(text: str) -> timedelta:
    pos, total = 0, 0.0
    if not text:
        raise ScheduleError(f'failed to parse duration @every {text}: time: invalid duration ""')
    while pos < len(text):
        m = _EVERY_RE.match(text, pos)
        if not m:
            raise ScheduleError(f'failed to parse duration @every {text}: time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return timedelta(seconds=total)


def load_zone(name: str) -> tzinfo:
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return datetime.now().astimezone().tzinfo or UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"unknown time zone {name}") from e


def parse_schedule(spec: str) -> Schedule:
    text = spec.strip()
    if not text:
        raise ScheduleError("empty spec string")
    tz: tzinfo | None = None
    if text.startswith(("TZ=", "CRON_TZ=")):
        head, _, text = text.partition(" ")
        tz = load_zone(head.split("=", 1)[1])
        text = text.strip()
    if text.startswith("@"):
        if text.startswith("@every "):
            every = _parse_duration(text[len("@every "):].strip())
            star = Field(frozenset(), True)
            return Schedule(star, star, star, star, star, tz, every)
        if text.lower() not in _DESCRIPTORS:
            raise ScheduleError(f"unrecognized descriptor: {text}")
        text = _DESCRIPTORS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {fields}")
    parsed = [_parse_field(f, i) for i, f in enumerate(fields)]
    return Schedule(*parsed, tz=tz)


def has_tz_prefix(schedule: str) -> bool:
    """Upstream validation rejects these: "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"."""
    return "TZ=" in schedule


# --------------------------------------------------------------------------------------------- decisions


def most_recent_schedule(schedule: Schedule, earliest: datetime, now: datetime,
                         tz: tzinfo | None) -> tuple[datetime | None, int]:
    """(the latest activation t with earliest < t <= now, how many activations were missed in that window)."""
    t = schedule.next(earliest, tz)
    if t is None or t > now:
        return None, 0
    latest = t
    missed = 1
    while True:
        nxt = schedule.next(latest, tz)
        if nxt is None or nxt > now:
            return latest, missed
        latest = nxt
        missed += 1
        if missed > TOO_MANY_MISSED * 10:
            # far behind: jump straight to near `now` (the count only needs to say "too many")
            probe = schedule.next(now - timedelta(days=8), tz)
            while probe is not None and probe <= now:
                latest = probe
                probe = schedule.next(probe, tz)
            return latest, missed


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    """`<cronjob>-<scheduled time in minutes since the epoch>`."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def scheduled_time_from_name(job: Obj, cronjob_name: str) -> datetime | None:
    name = job["metadata"].get("name") or ""
    prefix = cronjob_name + "-"
    if not name.startswith(prefix) or not name[len(prefix):].isdigit():
        return None
    return datetime.fromtimestamp(int(name[len(prefix):]) * 60, UTC)


def job_finished(job: Obj) -> tuple[bool, str]:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return True, c["type"]
    return False, ""


def format_rfc1123z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
