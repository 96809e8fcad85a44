"""Continuation tokens: they round-trip and refuse tampering."""

from __future__ import annotations

import pytest

from streamd.standin.streaming.tokens import TokenClaims, TokenError, decode_token, encode_token


def test_token_round_trip_and_tamper() -> None:
    claims = TokenClaims("DB", "S", "P-STREAMING", "CH/1", 3, 7)
    token = encode_token(b"k" * 32, claims)
    assert decode_token(b"k" * 32, token) == claims
    with pytest.raises(TokenError):
        decode_token(b"other" * 8, token)  # another process's secret
    with pytest.raises(TokenError):
        decode_token(b"k" * 32, token.replace(".", "x.", 1))
    with pytest.raises(TokenError):
        decode_token(b"k" * 32, "garbage")
