"""Stage uploaders: the PUT a Snowflake internal stage receives, and atomic local writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamd.errors import AuthError, RetryableError
from streamd.snowflake.stage_upload import InternalStage, LocalDirStage, put_command


class FakeCursor:
    """Records commands and the bytes of the file a PUT names (PUT reads it while it runs)."""

    def __init__(self, log: list[tuple[str, bytes]], fail: Exception | None) -> None:
        self._log = log
        self._fail = fail

    def execute(self, command: str) -> None:
        if self._fail is not None:
            raise self._fail
        local = command.split("'file://", 1)[1].split("'", 1)[0]
        self._log.append((command, Path(local).read_bytes()))


class FakeConnection:
    def __init__(self, log: list[tuple[str, bytes]], fail: Exception | None = None) -> None:
        self._log = log
        self._fail = fail

    def cursor(self) -> FakeCursor:
        return FakeCursor(self._log, self._fail)


def test_put_command_keeps_gzip_as_is_and_overwrites() -> None:
    command = put_command(Path("/tmp/x/000001-000010.ndjson.gz"), "DB.S.STAGE", "T/ab12")
    assert command == (
        "PUT 'file:///tmp/x/000001-000010.ndjson.gz' '@DB.S.STAGE/T/ab12' AUTO_COMPRESS = FALSE "
        "SOURCE_COMPRESSION = GZIP OVERWRITE = TRUE PARALLEL = 1"
    )


async def test_internal_stage_puts_the_file_under_its_own_name() -> None:
    log: list[tuple[str, bytes]] = []
    connects: list[int] = []

    def connect() -> Any:
        connects.append(1)
        return FakeConnection(log)

    stage = InternalStage("DB.S.STAGE", connect)
    await stage.upload("T/ab12/000001-000010.ndjson.gz", b"gz-bytes")
    await stage.upload("T/ab12/000011-000020.ndjson.gz", b"more")
    assert [data for _, data in log] == [b"gz-bytes", b"more"]
    assert log[0][0].startswith("PUT 'file://")
    assert "/000001-000010.ndjson.gz' '@DB.S.STAGE/T/ab12'" in log[0][0]
    assert len(connects) == 1  # one connection reused


@pytest.mark.parametrize(("errno", "expected"), [(390144, AuthError), (None, RetryableError)])
async def test_put_failures_map_onto_the_error_tree(errno: int | None, expected: type) -> None:
    err = RuntimeError("boom")
    err.errno = errno  # type: ignore[attr-defined]
    stage = InternalStage("DB.S.STAGE", lambda: FakeConnection([], err))
    with pytest.raises(expected):
        await stage.upload("a/b.ndjson.gz", b"x")


async def test_local_stage_writes_atomically(tmp_path: Path) -> None:
    stage = LocalDirStage(tmp_path / "stages" / "DB" / "S" / "ST")
    await stage.upload("T/e/1-2.ndjson.gz", b"one")
    await stage.upload("T/e/1-2.ndjson.gz", b"two")
    files = sorted(p.name for p in (tmp_path / "stages").rglob("*") if p.is_file())
    assert files == ["1-2.ndjson.gz"]
    assert (tmp_path / "stages/DB/S/ST/T/e/1-2.ndjson.gz").read_bytes() == b"two"
