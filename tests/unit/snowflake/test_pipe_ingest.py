"""snowflake-ingest errors mapped onto the error tree; load events parsed."""

from __future__ import annotations

import pytest
import requests
from snowflake.ingest.error import IngestResponseError

from streamd.errors import AuthError, FatalError, ObjectNotFound, RetryableError
from streamd.snowflake.pipe_ingest import _mapped, report_of


def _error(status: int) -> IngestResponseError:
    response = requests.Response()
    response.status_code = status
    response._content = b'{"code": "390001", "success": false, "message": "nope", "data": null}'
    return IngestResponseError(response)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, RetryableError),
        (503, RetryableError),
        (408, RetryableError),
        (401, AuthError),
        (404, ObjectNotFound),
        (400, FatalError),
    ],
)
def test_status_decides_the_class(status: int, expected: type[Exception]) -> None:
    err = _mapped(_error(status), "DB.S.P")
    assert type(err) is expected
    assert "DB.S.P" in str(err)
    assert getattr(err, "code", None) == "390001"


def test_a_load_event_is_parsed_with_its_first_error() -> None:
    report = report_of(
        {
            "path": "a.ndjson.gz",
            "status": "LOAD_FAILED",
            "rowsInserted": 0,
            "rowsParsed": 3,
            "errorsSeen": 1,
            "firstError": "Error parsing JSON",
            "firstErrorLineNum": 2,
            "lastInsertTime": "2026-11-23T10:00:00.000Z",
        }
    )
    assert (report.finished, report.loaded, report.first_error_line) == (True, False, 2)
    assert not report_of({"path": "b", "status": "LOAD_IN_PROGRESS"}).finished
