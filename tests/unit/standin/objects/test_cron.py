"""Task schedules: intervals and cron expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamd.standin.objects.cron import ScheduleError, parse_schedule


def test_interval_and_cron_schedules() -> None:
    assert parse_schedule("1 MINUTE").interval_s == 60
    assert parse_schedule("90 seconds").interval_s == 90
    cron = parse_schedule("USING CRON */15 9-17 * * MON-FRI UTC")
    friday_evening = datetime(2026, 11, 20, 17, 50, tzinfo=UTC)  # a Friday
    assert cron.next_after(friday_evening) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert cron.period_s(datetime(2026, 11, 23, 9, 1, tzinfo=UTC)) == 15 * 60
    la = parse_schedule("USING CRON 0 9 * * * America/Los_Angeles")
    assert la.next_after(datetime(2026, 7, 1, 0, 0, tzinfo=UTC)).hour == 16  # 09:00 PDT
    for bad in (
        "every tuesday",
        "0 MINUTE",
        "USING CRON 61 * * * * UTC",
        "USING CRON * * * * * Mars/X",
    ):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)
