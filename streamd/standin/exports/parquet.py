"""`COPY INTO @stage` Parquet unloads: options, file naming and result rows (snowflake-apis §5.4).

Files are named like Snowflake's: `<prefix>_<query id>_0_0_<n>.snappy.parquet` with
INCLUDE_QUERY_ID = TRUE, else `<prefix>_0_0_<n>.snappy.parquet`, where the prefix is the path after
the stage, `data` when the path ends with `/`. Zero rows write no file. Each file is written as
`.tmp` and renamed just before the unload's transaction commits, so a reader never sees a partial
file. A statement that fails after writing leaves `.tmp` files, which LIST never shows and the
next unload to the same prefix deletes once they are `STALE_TMP_S` old.
"""

from __future__ import annotations

import contextlib
import glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from streamd.standin.objects.stages import StageRef, Stages
from streamd.standin.sql.engine import Result, Session, SqlFailure, unsupported

DEFAULT_MAX_FILE_SIZE = 16 * 1024 * 1024
STALE_TMP_S = 600.0
"""Age after which an unload's leftover `.tmp` file (its transaction rolled back) is garbage."""
_CODECS = {"AUTO": "snappy", "SNAPPY": "snappy", "NONE": "none"}
_SUFFIX = {"snappy": ".snappy.parquet", "none": ".parquet"}


@dataclass(frozen=True, slots=True)
class UnloadOptions:
    """The copy options the stand-in runs; others are refused, never ignored."""

    header: bool = False
    include_query_id: bool = False
    detailed_output: bool = False
    single: bool = False
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    compression: str = "snappy"

    @classmethod
    def from_params(cls, params: list[exp.Expr]) -> UnloadOptions:
        """Read FILE_FORMAT, HEADER, INCLUDE_QUERY_ID, DETAILED_OUTPUT, SINGLE, MAX_FILE_SIZE."""
        values: dict[str, Any] = {}
        for param in params:
            key = param.this.name.upper() if param.this is not None else ""
            if key == "FILE_FORMAT":
                values["compression"] = _file_format(param)
            elif key in ("HEADER", "INCLUDE_QUERY_ID", "DETAILED_OUTPUT", "SINGLE"):
                values[key.lower()] = _flag(param)
            elif key == "MAX_FILE_SIZE":
                values["max_file_size"] = int(_value(param))
            elif key == "OVERWRITE" and not _flag(param):
                continue
            else:
                raise unsupported(f"COPY INTO <location> option {key} in the stand-in")
        return cls(**values)


def _value(param: exp.Expr) -> str:
    node = param.args.get("expression")
    if node is None and param.expressions:
        node = param.expressions[0]
    return (
        node.name
        if isinstance(node, exp.Literal | exp.Var | exp.Identifier)
        else (node.sql() if node is not None else "")
    )


def _flag(param: exp.Expr) -> bool:
    node = param.args.get("expression")
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    return _value(param).upper() in ("TRUE", "1")


def _file_format(param: exp.Expr) -> str:
    settings = {p.name.upper(): p.args["value"].name.upper() for p in param.expressions
                if isinstance(p, exp.Property)}  # fmt: skip
    if settings.get("TYPE", "") != "PARQUET":
        raise unsupported("COPY INTO <location> other than FILE_FORMAT = (TYPE = PARQUET)")
    codec = settings.get("COMPRESSION", "AUTO")
    if codec not in _CODECS:
        raise unsupported(f"Parquet COMPRESSION = {codec} (AUTO, SNAPPY or NONE)")
    return _CODECS[codec]


def unload(
    session: Session, sql: str, stages: Stages, ref: StageRef, options: UnloadOptions, query_id: str
) -> Result:
    """Run `sql` and write its rows as Parquet files into the stage (inside the transaction)."""
    relation = session.cur.sql(sql)
    for name, kind in zip(relation.columns, relation.types, strict=True):
        if str(kind).upper().startswith("TIMESTAMP WITH TIME ZONE"):
            # Snowflake refuses TIMESTAMP_TZ/LTZ in Parquet unloads (§5.4).
            raise SqlFailure(
                "100001",
                "22000",
                f"Unloading TIMESTAMP_TZ/TIMESTAMP_LTZ column {name} to Parquet is not supported; "
                "cast it to TIMESTAMP_NTZ or a string",
            )
    casts = [
        f'CAST("{n}" AS VARCHAR) AS "{n}"' if str(k).upper() == "JSON" else f'"{n}"'
        for n, k in zip(relation.columns, relation.types, strict=True)
    ]
    # Column names are quoted; `sql` is the statement's own translated query.
    table = session.cur.sql(f"SELECT {', '.join(casts)} FROM ({sql})").to_arrow_table()  # noqa: S608
    if not options.header:
        table = table.rename_columns([f"col{i + 1}" for i in range(table.num_columns)])
    files = _write_files(session, table, stages, ref, options, query_id)
    if options.detailed_output:
        rows = [(name, size, count) for name, size, count in files]
        return Result([("FILE_NAME", "VARCHAR"), ("FILE_SIZE", "BIGINT"), ("ROW_COUNT", "BIGINT")],
                      rows)  # fmt: skip
    output = sum(size for _, size, _ in files)
    return Result(
        [("rows_unloaded", "BIGINT"), ("input_bytes", "BIGINT"), ("output_bytes", "BIGINT")],
        [(table.num_rows, table.nbytes, output)],
        {"numRowsUnloaded": table.num_rows},
    )


def _write_files(
    session: Session,
    table: pa.Table,
    stages: Stages,
    ref: StageRef,
    options: UnloadOptions,
    query_id: str,
) -> list[tuple[str, int, int]]:
    if table.num_rows == 0:
        return []
    base = stages.directory(ref)
    prefix = ref.path if ref.path and not ref.path.endswith("/") else ref.path + "data"
    _remove_stale_tmp(base, prefix)
    per_row = max(1, table.nbytes // table.num_rows)
    per_file = table.num_rows if options.single else max(1, options.max_file_size // per_row)
    written: list[tuple[Path, Path]] = []
    files: list[tuple[str, int, int]] = []
    try:
        for n, start in enumerate(range(0, table.num_rows, per_file)):
            chunk = table.slice(start, per_file)
            middle = f"_{query_id}" if options.include_query_id else ""
            rel = prefix if options.single else f"{prefix}{middle}_0_0_{n}"
            rel += "" if options.single else _SUFFIX[options.compression]
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            pq.write_table(chunk, tmp, compression=options.compression)
            written.append((tmp, target))
            files.append((rel, tmp.stat().st_size, chunk.num_rows))
    except BaseException:
        _discard(written)
        raise
    session.on_commit(lambda: _publish(written))
    return files


def _remove_stale_tmp(base: Path, prefix: str) -> None:
    # Only this unload prefix's Parquet temporaries, and only old ones: a younger one may belong
    # to a transaction still open in the same request.
    cutoff = time.time() - STALE_TMP_S
    for tmp in base.glob(f"{glob.escape(prefix)}*.parquet.tmp"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()


def _publish(written: list[tuple[Path, Path]]) -> None:
    for tmp, target in written:
        tmp.replace(target)


def _discard(written: list[tuple[Path, Path]]) -> None:
    for tmp, _ in written:
        with contextlib.suppress(OSError):
            tmp.unlink()
