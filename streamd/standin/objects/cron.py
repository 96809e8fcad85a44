"""Task schedules (§5.5): `'N MINUTE'` intervals and `'USING CRON <5 fields> <time zone>'`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_INTERVAL = re.compile(r"^\s*(\d+)\s*(SECONDS?|MINUTES?|HOURS?|[SMH])\s*$", re.I)
_UNIT_S = {"S": 1, "M": 60, "H": 3600}
_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = {
    "JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9,
    "OCT": 10, "NOV": 11, "DEC": 12, "SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5,
    "SAT": 6,
}  # fmt: skip


class ScheduleError(ValueError):
    """A SCHEDULE the stand-in cannot parse."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed SCHEDULE: a fixed interval, or cron fields in a time zone."""

    interval_s: float | None
    cron: tuple[frozenset[int], ...] | None = None
    tz: str = "UTC"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment` (aware, UTC)."""
        if self.interval_s is not None:
            return moment + timedelta(seconds=self.interval_s)
        assert self.cron is not None
        minutes, hours, days, months, weekdays = self.cron
        local = moment.astimezone(ZoneInfo(self.tz)).replace(second=0, microsecond=0)
        probe = local + timedelta(minutes=1)
        for _ in range(366 * 24 * 60):  # at most a year of minutes
            dow = (probe.weekday() + 1) % 7  # cron: 0 = Sunday
            if (
                probe.minute in minutes
                and probe.hour in hours
                and probe.day in days
                and probe.month in months
                and (dow in weekdays or (dow == 0 and 7 in weekdays))
            ):
                return probe.astimezone(UTC)
            probe += timedelta(minutes=1)
        raise ScheduleError("cron expression never fires")

    def period_s(self, moment: datetime) -> float:
        """Seconds between the next two fire times after `moment`."""
        first = self.next_after(moment)
        return (self.next_after(first) - first).total_seconds()


def parse_schedule(text: str) -> Schedule:
    """Parse a SCHEDULE value (without its quotes)."""
    if m := _INTERVAL.match(text):
        value = int(m[1])
        if value <= 0:
            raise ScheduleError(f"schedule interval must be positive: {text!r}")
        return Schedule(value * _UNIT_S[m[2][0].upper()])
    parts = text.split()
    if len(parts) < 6 or [p.upper() for p in parts[:2]] != ["USING", "CRON"]:
        raise ScheduleError(f"unsupported SCHEDULE {text!r} (use 'N MINUTE' or 'USING CRON …')")
    fields = parts[2:7]
    tz = parts[7] if len(parts) > 7 else "UTC"
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(f"unknown time zone {tz!r} in SCHEDULE") from err
    return Schedule(
        None, tuple(_field(f, lo, hi) for f, (lo, hi) in zip(fields, _FIELDS, strict=True)), tz
    )


def _field(text: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.upper().split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", "?", "L"):
            start, end = lo, hi
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = _value(a), _value(b)
        else:
            start = _value(body)
            end = hi if step_text else start
        if not (lo <= start <= hi and lo <= end <= hi) or step <= 0:
            raise ScheduleError(f"cron field {text!r} out of range {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(token: str) -> int:
    if token in _NAMES:
        return _NAMES[token]
    try:
        return int(token)
    except ValueError as err:
        raise ScheduleError(f"bad cron value {token!r}") from err
