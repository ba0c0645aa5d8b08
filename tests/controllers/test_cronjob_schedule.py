"""Cron schedule parsing and next-activation times, with time zones, and the CronJob decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kubelite.controllers import cronjob_util as cj
from kubelite.controllers.cronjob import job_from_template


def nxt(spec: str, after: datetime, tz=None) -> datetime:
    return cj.parse_schedule(spec).next(after, tz)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_every_minute_and_steps():
    assert nxt("* * * * *", utc(2024, 1, 1, 10, 0, 30)) == utc(2024, 1, 1, 10, 1)
    assert nxt("*/15 * * * *", utc(2024, 1, 1, 10, 1)) == utc(2024, 1, 1, 10, 15)
    assert nxt("5/20 * * * *", utc(2024, 1, 1, 10, 30)) == utc(2024, 1, 1, 10, 45)
    assert nxt("10-20/5 * * * *", utc(2024, 1, 1, 10, 16)) == utc(2024, 1, 1, 10, 20)
    assert nxt("0,30 * * * *", utc(2024, 1, 1, 10, 0)) == utc(2024, 1, 1, 10, 30)
    # strictly after: an exact match is skipped
    assert nxt("0 * * * *", utc(2024, 1, 1, 10, 0)) == utc(2024, 1, 1, 11, 0)


def test_names_and_descriptors():
    # 2024-01-01 is a Monday
    assert nxt("0 9 * * mon-fri", utc(2024, 1, 5, 10)) == utc(2024, 1, 8, 9)
    assert nxt("0 0 1 FEB *", utc(2024, 1, 5)) == utc(2024, 2, 1)
    assert nxt("@hourly", utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 1, 11)
    assert nxt("@daily", utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 2)
    assert nxt("@weekly", utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 7)
    assert nxt("@monthly", utc(2024, 1, 1, 10, 5)) == utc(2024, 2, 1)
    assert nxt("@yearly", utc(2024, 1, 1, 10, 5)) == utc(2025, 1, 1)
    assert nxt("@every 90s", utc(2024, 1, 1, 10, 0, 0)) == utc(2024, 1, 1, 10, 1, 30)


def test_day_of_month_or_day_of_week():
    # both restricted: either matches (the 13th or any Friday); 2024-01-05 is a Friday
    assert nxt("0 0 13 * 5", utc(2024, 1, 1)) == utc(2024, 1, 5)
    # one starts with *: both must match (Fridays that are also any day)
    assert nxt("0 0 * * 5", utc(2024, 1, 6)) == utc(2024, 1, 12)
    # */2 is not a star: OR semantics again (odd days or Sundays)
    assert nxt("0 0 */2 * 0", utc(2024, 1, 1, 1)) == utc(2024, 1, 3)


def test_time_zones_and_dst():
    ny = ZoneInfo("America/New_York")
    # 09:00 New York in winter is 14:00 UTC, in summer 13:00 UTC
    assert nxt("0 9 * * *", utc(2024, 1, 10, 15), ny) == utc(2024, 1, 11, 14)
    assert nxt("0 9 * * *", utc(2024, 7, 10, 15), ny) == utc(2024, 7, 11, 13)
    # 02:30 does not exist on 2024-03-10 in New York: that day is skipped, as robfig/cron does
    assert nxt("30 2 * * *", utc(2024, 3, 10, 5), ny) == utc(2024, 3, 11, 6, 30)
    # 01:30 happens twice on 2024-11-03: the first one (EDT, 05:30 UTC) fires
    assert nxt("30 1 * * *", utc(2024, 11, 3, 0), ny) == utc(2024, 11, 3, 5, 30)
    # a TZ= prefix is understood by the parser (validation rejects it in CronJobs)
    assert nxt("CRON_TZ=Asia/Tokyo 0 9 * * *", utc(2024, 1, 1, 0, 30)) == utc(2024, 1, 2, 0)
    assert cj.has_tz_prefix("TZ=UTC * * * * *")
    with pytest.raises(cj.ScheduleError):
        cj.load_zone("Mars/Olympus")


@pytest.mark.parametrize("spec", ["", "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                                  "* * * * 7", "*/0 * * * *", "5-1 * * * *", "@fortnightly", "a * * * *",
                                  "1-2-3 * * * *"])
def test_invalid_schedules(spec):
    with pytest.raises(cj.ScheduleError):
        cj.parse_schedule(spec)


def test_impossible_date_has_no_next():
    assert nxt("0 0 30 2 *", utc(2024, 1, 1)) is None


def test_most_recent_schedule_counts_missed():
    s = cj.parse_schedule("*/10 * * * *")
    t, missed = cj.most_recent_schedule(s, utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 35), UTC)
    assert (t, missed) == (utc(2024, 1, 1, 10, 30), 3)
    assert cj.most_recent_schedule(s, utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 5), UTC) == (None, 0)
    t, missed = cj.most_recent_schedule(cj.parse_schedule("* * * * *"), utc(2024, 1, 1), utc(2024, 1, 3), UTC)
    assert t == utc(2024, 1, 3) and missed > cj.TOO_MANY_MISSED


def test_job_name_and_template():
    scheduled = utc(2023, 3, 28, 10, 40)
    assert cj.job_name("hello", scheduled) == "hello-28000000"
    cronjob = {"metadata": {"name": "hello", "namespace": "default", "uid": "u1"},
               "spec": {"jobTemplate": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"template": {"spec": {"containers": []}}}}}}
    job = job_from_template(cronjob, scheduled, ZoneInfo("Europe/Berlin"))
    assert job["metadata"]["name"] == "hello-28000000"
    assert job["metadata"]["labels"] == {"a": "b"}
    assert job["metadata"]["annotations"][cj.SCHEDULED_TIMESTAMP_ANNOTATION] == "2023-03-28T12:40:00+02:00"
    assert job_from_template(cronjob, scheduled, UTC)["metadata"]["annotations"][
        cj.SCHEDULED_TIMESTAMP_ANNOTATION] == "2023-03-28T10:40:00Z"
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("CronJob", "u1", True)
    assert cj.scheduled_time_from_name(job, "hello") == scheduled
    assert cj.format_rfc1123z(scheduled) == "Tue, 28 Mar 2023 10:40:00 +0000"
