"""The stand-in's local Iceberg warehouse: pyiceberg `SqlCatalog` on SQLite, `file://` tables.

Layout: `<data_dir>/iceberg/catalog.db` (the catalog; namespaces are `(DB, SCHEMA)`), and each
table at `<data_dir>/iceberg/<EXTERNAL_VOLUME>/<BASE_LOCATION>/` (`metadata/`, `data/`), readable
by any Iceberg reader through the catalog or the metadata file. Every publish is one whole-table
overwrite (an append on an empty table); snapshots beyond the newest `KEEP_SNAPSHOTS` are expired
so append cost stays flat (local-target-notes §4). Called on the DuckDB writer thread only.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

KEEP_SNAPSHOTS = 10
"""Snapshots kept per table (time travel window); older ones are expired after each publish."""
_PROPERTIES = {
    # pyiceberg deletes root metadata files beyond the newest few itself.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": str(KEEP_SNAPSHOTS),
}

Identifier = tuple[str, str, str]


class IcebergStore:
    """Creates and publishes the Iceberg tables behind `CREATE ICEBERG TABLE`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._catalog: Any = None
        self._lock = threading.Lock()

    def catalog(self) -> Any:
        """The SqlCatalog, opened on first use (pyiceberg is imported only when needed)."""
        with self._lock:
            if self._catalog is None:
                from pyiceberg.catalog.sql import SqlCatalog

                self.root.mkdir(parents=True, exist_ok=True)
                self._catalog = SqlCatalog(
                    "standin",
                    uri=f"sqlite:///{self.root / 'catalog.db'}",
                    warehouse=(self.root / "warehouse").as_uri(),
                )
            return self._catalog

    def create(self, ident: Identifier, schema: pa.Schema, volume: str, base: str) -> str:
        """Create the table, replacing one of the same name; returns its location."""
        catalog = self.catalog()
        catalog.create_namespace_if_not_exists(ident[:2])
        if catalog.table_exists(ident):
            # OR REPLACE, or a table the registry no longer knows: start afresh, files included.
            catalog.purge_table(ident)
        location = (self.root / _safe(volume) / base.strip("/")).as_uri()
        catalog.create_table(ident, schema=schema, location=location, properties=_PROPERTIES)
        return location

    def publish(self, ident: Identifier, data: pa.Table) -> None:
        """Make `data` the table's current state in one snapshot."""
        table = self.catalog().load_table(ident)
        data = data.cast(table.schema().as_arrow())
        snapshot = table.current_snapshot()
        total = 0
        if snapshot is not None and snapshot.summary is not None:
            total = int(snapshot.summary.additional_properties.get("total-records", "0") or 0)
        if total == 0:
            # overwrite() on an empty table warns that its delete matched nothing.
            table.append(data)
        else:
            table.overwrite(data)
        self._expire(table)

    def drop(self, ident: Identifier) -> None:
        """Drop the table and delete its files (Snowflake-managed tables own their storage)."""
        catalog = self.catalog()
        if catalog.table_exists(ident):
            catalog.purge_table(ident)

    def metadata_location(self, ident: Identifier) -> str:
        """The table's current root metadata file."""
        return str(self.catalog().load_table(ident).metadata_location)

    @staticmethod
    def _expire(table: Any) -> None:
        snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
        if len(snapshots) <= KEEP_SNAPSHOTS:
            return
        cutoff = snapshots[-KEEP_SNAPSHOTS].timestamp_ms
        table.maintenance.expire_snapshots().older_than(_ms_to_dt(cutoff)).commit()
        # Expiry drops references only (local-target-notes §4): every publish rewrites the whole
        # table, so without this the files of expired snapshots would pile up.
        _remove_orphans(table)


def _remove_orphans(table: Any) -> None:
    """Delete data files, manifests and manifest lists no kept snapshot references."""
    kept = {_local(p) for p in table.inspect.all_files().column("file_path").to_pylist()}
    kept |= {_local(p) for p in table.inspect.all_manifests().column("path").to_pylist()}
    kept |= {_local(s.manifest_list) for s in table.snapshots()}
    root = _local(table.location())
    for folder, pattern in (("data", "*.parquet"), ("metadata", "*.avro")):
        for path in (root / folder).rglob(pattern):
            if path not in kept:
                path.unlink(missing_ok=True)


def _local(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else Path(uri)


def _ms_to_dt(ms: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000 - 0.001, UTC)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "volume"
