"""Key loading, fingerprint, account normalisation and JWT minting (snowflake-apis.md §1.1)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.errors import ConfigError
from streamd.snowflake.auth import (
    KeyPairAuth,
    load_private_key,
    mint_jwt,
    normalise_account,
    public_key_fingerprint,
)
from streamd.testing import ManualClock

DATA = Path(__file__).parent / "data"
PASSPHRASE = b"streamd-test-passphrase"
# Computed once with the shell steps of §1.1 (see data/README.md), not with the code under test.
EXPECTED_FP = "SHA256:BRv0JiwceL7jT9qQp1OHaQorcw9mgUOSd400sDYcqHQ="


def _pem_body(pem: bytes) -> bytes:
    lines = [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]
    return base64.b64decode("".join(lines))


def test_fingerprint_matches_openssl(rsa_key: RSAPrivateKey) -> None:
    """The fingerprint is SHA256 of the DER SPKI, base64 with padding, as openssl computes it."""
    assert public_key_fingerprint(rsa_key) == EXPECTED_FP


def test_fingerprint_matches_hash_of_public_pem_body(rsa_key: RSAPrivateKey) -> None:
    """The body of a PUBLIC KEY PEM is the DER SPKI, so hashing it gives the same fingerprint."""
    der = _pem_body((DATA / "rsa_key.pub").read_bytes())
    independent = "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert public_key_fingerprint(rsa_key) == independent


def test_mint_jwt_claims_and_signature(rsa_key: RSAPrivateKey) -> None:
    """The JWT is RS256 with iss ACCOUNT.USER.SHA256:fp, sub ACCOUNT.USER, iat/exp in seconds."""
    token = mint_jwt(rsa_key, "myorg-acct.us-east-2.aws", "svc_user", now=1_700_000_000.9)
    public = serialization.load_pem_public_key((DATA / "rsa_key.pub").read_bytes())
    claims = jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False})  # type: ignore[arg-type]
    assert claims == {
        "iss": f"MYORG-ACCT.SVC_USER.{EXPECTED_FP}",
        "sub": "MYORG-ACCT.SVC_USER",
        "iat": 1_700_000_000,
        "exp": 1_700_000_000 + 3540,
    }
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT"}


def test_mint_jwt_custom_lifetime(rsa_key: RSAPrivateKey) -> None:
    """`lifetime_s` sets exp relative to iat."""
    claims = jwt.decode(
        mint_jwt(rsa_key, "a", "u", now=100.0, lifetime_s=60),
        options={"verify_signature": False},
    )
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("myorg-myaccount", "MYORG-MYACCOUNT"),
        ("MyOrg-My_Account", "MYORG-MY_ACCOUNT"),
        ("xy12345", "XY12345"),
        ("xy12345.us-east-2.aws", "XY12345"),
        ("xy12345.us-east-1", "XY12345"),
        ("xy12345.east-us-2.azure", "XY12345"),
        ("myorg-myaccount.privatelink", "MYORG-MYACCOUNT"),
        ("myorg-myaccount.snowflakecomputing.com", "MYORG-MYACCOUNT"),
        ("testaccount-xyz.global", "TESTACCOUNT"),
        ("acct-with-dashes-suffix.global", "ACCT-WITH-DASHES"),
        ("myorg.myaccount", "MYORG-MYACCOUNT"),
        ("myorg.my_account1", "MYORG-MY_ACCOUNT1"),
        ("  https://myorg-acct.snowflakecomputing.com/  ", "MYORG-ACCT"),
    ],
)
def test_normalise_account(configured: str, expected: str) -> None:
    """Accounts follow parse_account (§1.1), plus the SQL `org.account` form."""
    assert normalise_account(configured) == expected


def test_normalise_account_empty_is_config_error() -> None:
    """An empty account is a configuration error naming the key."""
    with pytest.raises(ConfigError, match="account"):
        normalise_account("  ")


def test_encrypted_key_with_passphrase(rsa_key: RSAPrivateKey) -> None:
    """An AES-encrypted PKCS#8 key loads with its passphrase and is the same key."""
    key = load_private_key(
        (DATA / "rsa_key_encrypted.p8").read_bytes(), PASSPHRASE, source="keyfile"
    )
    assert public_key_fingerprint(key) == EXPECTED_FP


def _pkcs8(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _bad_cases() -> list[tuple[str, bytes, bytes | None, str]]:
    plain = (DATA / "rsa_key.p8").read_bytes()
    encrypted = (DATA / "rsa_key_encrypted.p8").read_bytes()
    return [
        ("not-pem", b"this is not a key", None, "not a PEM"),
        ("encrypted-no-pass", encrypted, None, "set its passphrase"),
        ("encrypted-wrong-pass", encrypted, b"wrong", "check the passphrase"),
        ("plain-with-pass", plain, PASSPHRASE, "remove the passphrase"),
        ("truncated", plain[: len(plain) // 2] + b"\n-----END PRIVATE KEY-----\n", None, "cannot"),
        ("ec", _pkcs8(ec.generate_private_key(ec.SECP256R1())), None, "not RSA"),
        # The point of this case is a key that is too small.
        ("rsa-1024", _pkcs8(rsa.generate_private_key(65537, 1024)), None, "at least 2048"),  # noqa: S505
    ]


@pytest.mark.parametrize(("name", "pem", "passphrase", "hint"), _bad_cases())
def test_bad_key_is_one_line_config_error(
    name: str, pem: bytes, passphrase: bytes | None, hint: str
) -> None:
    """Every bad key gives one line naming the source and the fix, and no key material."""
    with pytest.raises(ConfigError) as info:
        load_private_key(pem, passphrase, source="target.private_key_file=/etc/k.p8")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("target.private_key_file=/etc/k.p8: ")
    assert hint in message
    body_lines = [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]
    assert not any(ln in message for ln in body_lines if len(ln) > 16)
    if passphrase:
        assert passphrase.decode() not in message
    # No chained cryptography error that could print key bytes in a traceback.
    assert info.value.__cause__ is None


def test_key_pair_auth_caches_and_remints_after_54_minutes(rsa_key: RSAPrivateKey) -> None:
    """The JWT is reused for 54 minutes of clock time, then re-signed with a fresh iat."""
    clock = ManualClock(start_wall=1_800_000_000.0)
    auth = KeyPairAuth(rsa_key, "myorg-acct", "me", clock)
    first = auth.jwt()
    clock.advance(54 * 60 - 1)
    assert auth.jwt() is first
    clock.advance(1)
    second = auth.jwt()
    assert second != first
    claims = jwt.decode(second, options={"verify_signature": False})
    assert claims["iat"] == 1_800_000_000 + 54 * 60
    assert claims["sub"] == "MYORG-ACCT.ME"


def test_key_pair_auth_repr_hides_key(rsa_key: RSAPrivateKey) -> None:
    """The repr names the identity and fingerprint, never the key or a token."""
    auth = KeyPairAuth(rsa_key, "a", "u", ManualClock())
    token = auth.jwt()
    text = repr(auth)
    assert EXPECTED_FP in text
    assert token not in text
    assert "PRIVATE" not in text


def test_the_role_travels_in_scp_as_the_official_sdk_sends_it(rsa_key: RSAPrivateKey) -> None:
    """`target.role` becomes `scp: session:role:<ROLE>`; no role, no claim (the user's default)."""
    with_role = KeyPairAuth(rsa_key, "a", "u", ManualClock(), role="streamd_ingest")
    claims = jwt.decode(with_role.jwt(), options={"verify_signature": False})
    assert claims["scp"] == "session:role:STREAMD_INGEST"
    quoted = KeyPairAuth(rsa_key, "a", "u", ManualClock(), role='"Mixed Case"')
    assert jwt.decode(quoted.jwt(), options={"verify_signature": False})["scp"] == (
        "session:role:Mixed Case"
    )
    default = KeyPairAuth(rsa_key, "a", "u", ManualClock())
    assert "scp" not in jwt.decode(default.jwt(), options={"verify_signature": False})
