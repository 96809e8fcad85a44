"""The streaming API's refusal: one exception carrying the documented status, code and message."""

from __future__ import annotations


class StreamingError(Exception):
    """A request the streaming API refuses; rendered as `{"code": …, "message": …}` (§2.10)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
