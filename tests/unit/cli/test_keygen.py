"""`streamd keygen`: files and modes, output the client's JWT code accepts, the permission check."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from streamd.cli.keygen import (
    KeyPairFiles,
    alter_user_statement,
    generate,
    quote_identifier,
)
from streamd.errors import ConfigError
from streamd.snowflake.auth import KeyPairAuth, load_private_key, mint_jwt
from streamd.standin.http.auth import Authenticator
from streamd.testing import ManualClock

PASSPHRASE = b"correct horse battery staple"
OPENSSL = shutil.which("openssl")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pem_der(pem: bytes) -> bytes:
    lines = [ln for ln in pem.decode().splitlines() if ln and not ln.startswith("-----")]
    return base64.b64decode("".join(lines))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> KeyPairFiles:
    """An unencrypted pair, written under a umask that would otherwise leak the key."""
    old = os.umask(0o000)
    try:
        return generate(tmp_path_factory.mktemp("plain") / "keys", user="svc_streamd")
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> KeyPairFiles:
    """A passphrase-protected pair, written under a strict umask (0644 must stay 0644)."""
    old = os.umask(0o077)
    try:
        return generate(tmp_path_factory.mktemp("enc"), name="prod", passphrase=PASSPHRASE)
    finally:
        os.umask(old)


def test_files_and_modes(plain: KeyPairFiles, encrypted: KeyPairFiles) -> None:
    """`<name>.p8` is 0600, `<name>.pub` 0644, whatever the umask; a new directory is 0700."""
    assert plain.private_path.name == "rsa_key.p8"
    assert plain.public_path.name == "rsa_key.pub"
    assert encrypted.private_path.name == "prod.p8"
    for files in (plain, encrypted):
        assert _mode(files.private_path) == 0o600
        assert _mode(files.public_path) == 0o644
        assert not [p for p in files.private_path.parent.iterdir() if p.name.endswith(".tmp")]
    assert _mode(plain.private_path.parent) == 0o700


def test_private_key_is_pkcs8(plain: KeyPairFiles, encrypted: KeyPairFiles) -> None:
    """PKCS#8 PEM armour: plain `PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a passphrase."""
    assert plain.private_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert encrypted.private_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not plain.encrypted
    assert encrypted.encrypted


def test_loads_with_the_clients_loader(plain: KeyPairFiles, encrypted: KeyPairFiles) -> None:
    """`load_private_key` reads both; the encrypted one needs its passphrase."""
    key = load_private_key(plain.private_path.read_bytes(), None, source="t")
    assert key.key_size == 2048
    enc = load_private_key(encrypted.private_path.read_bytes(), PASSPHRASE, source="t")
    assert enc.key_size == 2048
    with pytest.raises(ConfigError, match="encrypted"):
        load_private_key(encrypted.private_path.read_bytes(), None, source="t")
    with pytest.raises(ConfigError, match="passphrase"):
        load_private_key(encrypted.private_path.read_bytes(), b"wrong", source="t")


@pytest.mark.parametrize("which", ["plain", "encrypted"])
def test_jwt_verifies_against_written_public_key(
    which: str, request: pytest.FixtureRequest
) -> None:
    """A JWT minted by the client with the key verifies with the .pub file, fingerprint included."""
    files: KeyPairFiles = request.getfixturevalue(which)
    passphrase = PASSPHRASE if files.encrypted else None
    key = load_private_key(files.private_path.read_bytes(), passphrase, source="t")
    public_pem = files.public_path.read_bytes()

    token = mint_jwt(key, "myorg-acct", "svc_streamd", now=time.time())
    public = serialization.load_pem_public_key(public_pem)
    claims = jwt.decode(token, public, algorithms=["RS256"])  # type: ignore[arg-type]
    assert claims["iss"] == f"MYORG-ACCT.SVC_STREAMD.{files.fingerprint}"
    assert claims["sub"] == "MYORG-ACCT.SVC_STREAMD"

    # The stand-in checks what Snowflake checks: signature, expiry and the fingerprint in iss.
    auth = KeyPairAuth(key, "myorg-acct", "svc_streamd", ManualClock(start_wall=time.time()))
    assert Authenticator.create(public_pem).check_control(f"Bearer {auth.jwt()}") == (
        "MYORG-ACCT.SVC_STREAMD"
    )


def test_fingerprint_is_sha256_of_public_der(plain: KeyPairFiles) -> None:
    """Independently: sha256 of the .pub PEM body (the DER SPKI), standard base64."""
    der = _pem_der(plain.public_path.read_bytes())
    assert plain.fingerprint == "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_reads_encrypted_key(encrypted: KeyPairFiles) -> None:
    """openssl decrypts the key with the passphrase and derives the same public key."""
    assert OPENSSL is not None
    out = subprocess.run(
        [
            OPENSSL,
            "pkey",
            "-in",
            str(encrypted.private_path),
            "-passin",
            "env:KEYGEN_TEST_PASS",
            "-pubout",
            "-outform",
            "DER",
        ],
        env={**os.environ, "KEYGEN_TEST_PASS": PASSPHRASE.decode()},
        capture_output=True,
        check=True,
    ).stdout
    assert out == _pem_der(encrypted.public_path.read_bytes())
    details = subprocess.run(
        [OPENSSL, "asn1parse", "-in", str(encrypted.private_path)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    assert "aes-256-cbc" in details.lower()


def test_alter_user_statement(plain: KeyPairFiles) -> None:
    """The statement carries the base64 DER on one line, no armour, and the user identifier."""
    der = _pem_der(plain.public_path.read_bytes())
    body = base64.b64encode(der).decode()
    assert plain.alter_user_sql == f"ALTER USER SVC_STREAMD SET RSA_PUBLIC_KEY='{body}';"
    assert "-----" not in plain.alter_user_sql
    assert "\n" not in plain.alter_user_sql
    assert plain.fingerprint in plain.describe()
    assert plain.alter_user_sql in plain.describe()


def test_quote_identifier() -> None:
    """Plain names are bare (Snowflake upper-cases them); anything else is double-quoted."""
    assert quote_identifier("streamd") == "STREAMD"
    assert quote_identifier("svc-streamd") == '"svc-streamd"'
    assert quote_identifier('a"b') == '"a""b"'
    pem = b"-----BEGIN PUBLIC KEY-----\nAAAA\nBBBB\n-----END PUBLIC KEY-----\n"
    assert alter_user_statement("x y", pem) == "ALTER USER \"x y\" SET RSA_PUBLIC_KEY='AAAABBBB';"


def test_refuses_to_overwrite(plain: KeyPairFiles) -> None:
    """Existing files stay as they were; the error names the file and --force."""
    before = plain.private_path.read_bytes()
    with pytest.raises(ConfigError, match=r"rsa_key\.p8 exists; pass --force"):
        generate(plain.private_path.parent)
    assert plain.private_path.read_bytes() == before


def test_refuses_when_only_the_public_half_exists(tmp_path: Path) -> None:
    """Checked before writing anything: no half pair is left behind."""
    (tmp_path / "rsa_key.pub").write_text("old")
    with pytest.raises(ConfigError, match=r"rsa_key\.pub exists"):
        generate(tmp_path)
    assert not (tmp_path / "rsa_key.p8").exists()


def test_force_replaces(tmp_path: Path) -> None:
    """With force a new pair replaces the old, modes still exact."""
    first = generate(tmp_path)
    second = generate(tmp_path, force=True)
    assert second.fingerprint != first.fingerprint
    assert _mode(second.private_path) == 0o600
    assert _mode(second.public_path) == 0o644


def test_rejects_small_keys_and_empty_passphrase(tmp_path: Path) -> None:
    """Snowflake needs 2048 bits; an empty passphrase is a mistake, not 'no encryption'."""
    with pytest.raises(ConfigError, match="too small"):
        generate(tmp_path, bits=1024)
    with pytest.raises(ConfigError, match="empty"):
        generate(tmp_path, passphrase=b"")
    assert list(tmp_path.iterdir()) == []
