"""Times as the runtimes and /proc write them, read into one form: UTC, ISO 8601, microseconds.

Docker writes RFC 3339 with nanoseconds and a zone ("2026-11-30T07:12:59.123456789Z", health
checks with "+00:00"), Kubernetes RFC 3339 in seconds or microseconds, a manifest epoch seconds.
Python's ``fromisoformat`` takes at most six fractional digits, so the rest are cut first. Go's
zero time ("0001-01-01T00:00:00Z") means "never" and reads as None.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_FRACTION = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")


def parse_time(text: object) -> datetime | None:
    """An aware UTC datetime from an RFC 3339 string, or None (empty, zero time, not a time)."""
    if not isinstance(text, str):
        return None
    match = _FRACTION.match(text.strip())
    if not match:
        return None
    whole, fraction, zone = match.groups()
    if whole.startswith("0001-"):
        return None
    zone = "+00:00" if zone in (None, "Z") else zone
    try:
        parsed = datetime.fromisoformat(whole + (fraction or "")[:7] + zone)
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def from_epoch(seconds: float) -> datetime | None:
    """An aware UTC datetime from seconds since the epoch; None for 0 or out of range."""
    if not seconds or seconds < 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso(moment: datetime, fraction: bool = False) -> str:
    """``2026-11-30T07:12:59.123456Z``; a zero fraction is left out unless ``fraction`` (then
    every string has the same length and strings sort as times do)."""
    text = moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return text if fraction else text.replace(".000000Z", "Z")


def iso_or_none(text: object) -> str | None:
    """An RFC 3339 string in our one form, or None."""
    parsed = parse_time(text)
    return iso(parsed) if parsed else None


def now_iso() -> str:
    return iso(datetime.now(UTC))
