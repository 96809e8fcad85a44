"""Bearer checks: key-pair JWTs on the control host, scoped tokens on the ingest host.

Reference §1.1 (key-pair JWT) and §2.4 (scoped token).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

MAX_JWT_LIFETIME_S = 3600
SCOPED_TOKEN_LIFETIME_S = 3600
_MS_THRESHOLD = 100_000_000_000
"""Epoch values above this are milliseconds (year 5138 in seconds): the SDK sends ms (wire §2)."""


class Unauthorized(Exception):
    """The request's credentials are missing, malformed, expired or not ours: answer 401."""


def fingerprint(public_key: RSAPublicKey) -> str:
    """`SHA256:<base64 of sha256(DER SubjectPublicKeyInfo)>`, as Snowflake computes it (§1.1)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header (scheme case-insensitive, §1.1)."""
    if not authorization:
        raise Unauthorized("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token.strip()


def _seconds(value: object, claim: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"JWT claim {claim} must be a number")
    return value / 1000 if value > _MS_THRESHOLD else float(value)


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Verifies key-pair JWTs against one configured public key and issues scoped tokens."""

    public_key: RSAPublicKey | None
    secret: bytes

    @classmethod
    def create(cls, public_key_pem: bytes | None) -> Authenticator:
        """An authenticator for a PEM public key (None: accept any bearer on control calls)."""
        key = None
        if public_key_pem is not None:
            loaded = serialization.load_pem_public_key(public_key_pem)
            if not isinstance(loaded, RSAPublicKey):
                raise ValueError("public_key_pem must be an RSA public key")
            key = loaded
        return cls(key, secrets.token_bytes(32))

    def check_control(self, authorization: str | None) -> str:
        """Control-host calls: a verified key-pair JWT; returns `ACCOUNT.USER`."""
        token = bearer(authorization)
        if self.public_key is None:
            # No key configured: any bearer passes (announced in the start-up log), but one is
            # still required so a client that forgets auth fails here as it would in Snowflake.
            return _unverified_subject(token)
        return self._verify_keypair(token, self.public_key)

    def check_ingest(self, authorization: str | None) -> str:
        """Ingest-host calls: our scoped token, or a key-pair JWT (EMQX does that, §2.1 [OBS])."""
        token = bearer(authorization)
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"require": ["exp"]}
            )
            return str(claims.get("sub", ""))
        except jwt.ExpiredSignatureError as err:
            raise Unauthorized("scoped token has expired") from err
        except jwt.PyJWTError:
            pass
        if self.public_key is None:
            # Without a configured key, a key-pair-shaped JWT is accepted unverified, matching
            # the control host's policy.
            subject = _unverified_subject(token)
            if ".SHA256:" in _unverified_claims(token).get("iss", ""):
                return subject
            raise Unauthorized("ingest calls need the scoped token from /oauth/token")
        return self._verify_keypair(token, self.public_key)

    def issue_scoped_token(self, subject: str, scope: str) -> str:
        """The scoped token of /oauth/token: an HS256 JWT with `exp` one hour ahead (§2.4)."""
        now = int(time.time())
        claims = {"sub": subject, "scope": scope, "iat": now, "exp": now + SCOPED_TOKEN_LIFETIME_S}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def _verify_keypair(self, token: str, key: RSAPublicKey) -> str:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256", "RS384", "RS512"],
                # iat/exp may be milliseconds (the SDK's choice), which PyJWT would misread, so
                # the time checks are done below instead.
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as err:
            raise Unauthorized(f"JWT signature or format invalid: {err}") from err
        iss, sub = str(claims.get("iss", "")), str(claims.get("sub", ""))
        prefix, sep, fp = iss.partition(".SHA256:")
        if not sep or "SHA256:" + fp != fingerprint(key):
            raise Unauthorized("JWT iss must be <ACCOUNT>.<USER>.SHA256:<fingerprint of the key>")
        if prefix.upper() != sub.upper() or "." not in sub:
            raise Unauthorized("JWT sub must be <ACCOUNT>.<USER> and match iss")
        iat = _seconds(claims.get("iat"), "iat")
        exp = _seconds(claims.get("exp"), "exp")
        now = time.time()
        if exp <= now:
            raise Unauthorized("JWT has expired")
        if exp - iat > MAX_JWT_LIFETIME_S:
            raise Unauthorized("JWT lifetime (exp - iat) exceeds one hour")
        return sub.upper()


def _unverified_claims(token: str) -> dict[str, str]:
    try:
        raw = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return {k: str(v) for k, v in raw.items()}


def _unverified_subject(token: str) -> str:
    return _unverified_claims(token).get("sub", "ANONYMOUS")
