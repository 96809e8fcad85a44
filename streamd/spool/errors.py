"""Errors the spool raises on purpose; each carries a one-line message an operator can act on.

They hang off `StreamdError` (see `streamd.errors`)::

    StreamdError
    └── SpoolError             the local spool cannot do what was asked
        ├── RecordTooLarge     one row does not fit in a segment (raise segment_bytes or split the row)
        ├── BatchTooLarge      one append is bigger than max_bytes and could never fit
        ├── SpoolCorrupt       a record that was valid on open fails its checksum on read
        └── SpoolLocked        another process holds the lane directory
"""

from __future__ import annotations

from streamd.errors import StreamdError


class SpoolError(StreamdError):
    """The spool cannot do what was asked."""


class RecordTooLarge(SpoolError):
    """One row is larger than a whole segment."""


class BatchTooLarge(SpoolError):
    """One append is larger than `max_bytes`; it could never fit, whatever is committed."""


class SpoolCorrupt(SpoolError):
    """Data on disk fails validation somewhere recovery does not repair (not a torn tail)."""


class SpoolLocked(SpoolError):
    """Another process (or another open spool) owns the lane directory."""
