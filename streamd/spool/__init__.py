"""The durable local spool: push sources' rows are made durable here before they are acknowledged."""

from streamd.spool.errors import (
    BatchTooLarge,
    RecordTooLarge,
    SpoolCorrupt,
    SpoolError,
    SpoolLocked,
)
from streamd.spool.spool import LaneSpool, SpoolConfig

__all__ = [
    "BatchTooLarge",
    "LaneSpool",
    "RecordTooLarge",
    "SpoolConfig",
    "SpoolCorrupt",
    "SpoolError",
    "SpoolLocked",
]
