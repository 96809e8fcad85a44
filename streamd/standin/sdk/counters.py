"""What the official SDK's undocumented endpoints saw, counted for tests and inspection."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SdkCounters:
    """Calls to the SDK-only endpoints (`http/sdk.py`), by kind."""

    telemetry_posts: int = 0
    telemetry_logs: int = 0
    stage_uploads: int = 0
    file_fragments: int = 0
