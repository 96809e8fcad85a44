"""Dynamic tables: TARGET_LAG parsing."""

from __future__ import annotations

import pytest

from streamd.standin.objects.dynamic_tables import lag_seconds
from streamd.standin.sql.engine import SqlFailure


def test_target_lag() -> None:
    assert lag_seconds("1 minute") == 60
    assert lag_seconds("2 hours") == 7200
    assert lag_seconds("downstream") is None
    with pytest.raises(SqlFailure):
        lag_seconds("soon")
