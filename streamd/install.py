"""What this install carries: the full one, or the streaming-only runtime (the slim image)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from streamd.errors import NotInstalled

# Top-level packages that only the local stand-in and classic-Snowpipe files mode import; the
# streaming-only runtime (requirements/streaming.txt) leaves them out.
FULL_ONLY = frozenset(
    {"duckdb", "pyarrow", "sqlglot", "pyiceberg", "snowflake", "boto3", "botocore"}
)


@contextmanager
def needs_full_install(feature: str) -> Iterator[None]:
    """Turn a missing full-install package, imported inside, into one line that says what to do."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in FULL_ONLY:
            raise
        raise NotInstalled(
            f"{feature} needs {exc.name}, which this streaming-only install leaves out: "
            "install the full package (pip install streamd) or use the image's full target"
        ) from None
