"""Kubernetes timestamps (RFC 3339 `metav1.Time` / `MicroTime`) and upstream's human-readable durations."""

from __future__ import annotations

import math
from datetime import UTC, datetime

UNKNOWN = "<unknown>"


def now() -> datetime:
    return datetime.now(UTC)


def format_rfc3339(dt: datetime) -> str:
    """`metav1.Time` form: second precision, UTC, `Z` suffix."""
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro(dt: datetime) -> str:
    """`metav1.MicroTime` form: microsecond precision, UTC, `Z` suffix."""
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    return format_rfc3339(now())


def now_micro() -> str:
    return format_micro(now())


def parse_rfc3339(text: str | None) -> datetime | None:
    """An aware datetime from an RFC 3339 string (any fraction, `Z` or offset); None if empty or malformed."""
    if not text or not isinstance(text, str):
        return None
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # fromisoformat accepts at most 6 fractional digits; Go may write 9
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        s = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def human_duration(seconds: float) -> str:
    """Upstream's `duration.HumanDuration`: about two to three significant figures (`5s`, `2m3s`, `4h`, `12d`, `2y`)."""
    d = _nanos(seconds)
    secs = _trunc(d, 1_000_000_000)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = d // 60_000_000_000
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = d // 3_600_000_000_000
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def short_human_duration(seconds: float) -> str:
    """Upstream's `duration.ShortHumanDuration`: one unit only (`45s`, `3m`, `5h`, `12d`, `2y`)."""
    d = _nanos(seconds)
    secs = _trunc(d, 1_000_000_000)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60:
        return f"{secs}s"
    if (minutes := d // 60_000_000_000) < 60:
        return f"{minutes}m"
    hours = d // 3_600_000_000_000
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: str | None, at: datetime | None = None) -> str:
    """Age of a timestamp as upstream's printers show it; `<unknown>` when it is missing."""
    dt = parse_rfc3339(timestamp)
    if dt is None:
        return UNKNOWN
    return human_duration(((at or now()) - dt).total_seconds())


def until(timestamp: str | None, at: datetime | None = None) -> str:
    dt = parse_rfc3339(timestamp)
    if dt is None:
        return UNKNOWN
    return human_duration((dt - (at or now())).total_seconds())


def between(start: str | None, end: str | None) -> str | None:
    a, b = parse_rfc3339(start), parse_rfc3339(end)
    if a is None or b is None:
        return None
    return human_duration((b - a).total_seconds())


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _nanos(seconds: float) -> int:
    return int(round(seconds * 1_000_000_000))


def _trunc(nanos: int, unit: int) -> int:
    """Go's integer division truncates toward zero."""
    return int(math.trunc(nanos / unit)) if nanos < 0 else nanos // unit
