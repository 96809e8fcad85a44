"""Log redaction: secrets never reach a rendered line."""

from __future__ import annotations

from streamd.logs import REDACTED, redact_secrets

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJBQ0NULlVTRVIifQ.c2lnbmF0dXJlc2lnbmF0dXJl"


def test_secret_keys_are_redacted() -> None:
    """Keys that name secrets lose their values; positions such as offset tokens stay."""
    event = redact_secrets(
        None,
        "info",
        {
            "event": "x",
            "private_key": "abc",
            "scoped_token": "t",
            "Authorization": "Bearer t",
            "offset_token": "00000000000000000042",
            "rows": 3,
        },
    )
    assert event["private_key"] == REDACTED
    assert event["scoped_token"] == REDACTED
    assert event["Authorization"] == REDACTED
    assert event["offset_token"] == "00000000000000000042"
    assert event["rows"] == 3


def test_secret_values_are_redacted_anywhere() -> None:
    """A PEM block or a JWT inside any string, even nested, is replaced."""
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----"
    event = redact_secrets(
        None, "error", {"event": "x", "detail": f"bad {JWT} here", "nested": {"k": [pem]}}
    )
    assert JWT not in event["detail"]
    assert REDACTED in event["detail"]
    assert event["nested"] == {"k": [REDACTED]}
