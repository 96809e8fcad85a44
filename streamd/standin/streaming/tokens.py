"""Continuation tokens: opaque to clients, tamper-evident to the stand-in.

A token is base64url(JSON claims) + "." + base64url(HMAC-SHA256) under a per-process secret, so a
forged, garbled, or earlier-process token is rejected instead of being half-understood (§2.11 says
the token "encapsulates both client and row sequencers" and is otherwise opaque).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import asdict, dataclass

import orjson


class TokenError(ValueError):
    """The continuation token is not one this stand-in process issued."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a continuation token stands for: a channel, an opener and a position in its chain."""

    db: str
    schema: str
    pipe: str
    channel: str
    client_seq: int
    row_seq: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(secret: bytes, claims: TokenClaims) -> str:
    """Sign the claims into an opaque token string."""
    payload = orjson.dumps(asdict(claims), option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def decode_token(secret: bytes, token: str) -> TokenClaims:
    """Verify and decode a token; TokenError when it is malformed or not signed by `secret`."""
    try:
        payload_part, mac_part = token.split(".")
        payload = _unb64(payload_part)
        mac = _unb64(mac_part)
    except (ValueError, binascii.Error) as err:
        raise TokenError("continuation token is malformed") from err
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
        raise TokenError("continuation token was not issued by this stand-in (garbled or forged)")
    try:
        raw = orjson.loads(payload)
        return TokenClaims(
            db=str(raw["db"]),
            schema=str(raw["schema"]),
            pipe=str(raw["pipe"]),
            channel=str(raw["channel"]),
            client_seq=int(raw["client_seq"]),
            row_seq=int(raw["row_seq"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise TokenError("continuation token payload is malformed") from err
