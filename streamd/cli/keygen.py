"""`streamd keygen`: an RSA key pair for Snowflake key-pair auth, written with safe file modes."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streamd.atomic_write import write_atomically
from streamd.cli.common import fail, one_line_errors
from streamd.errors import ConfigError
from streamd.snowflake.auth import MIN_KEY_BITS, public_key_fingerprint

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


@dataclass(frozen=True)
class KeyPairFiles:
    """What `generate` wrote, and what the operator runs in Snowflake next."""

    private_path: Path
    """PKCS#8 PEM private key, mode 0600; point `target.private_key = "file:…"` at it."""
    public_path: Path
    """SubjectPublicKeyInfo PEM public key, mode 0644."""
    fingerprint: str
    """`SHA256:…`, as `DESC USER` shows in RSA_PUBLIC_KEY_FP."""
    alter_user_sql: str
    """`ALTER USER … SET RSA_PUBLIC_KEY='…';` registering the public key."""
    encrypted: bool
    """True when the private key is encrypted with a passphrase (AES-256-CBC)."""

    def describe(self) -> str:
        """Lines for the terminal: files, fingerprint, the statement to run, how to check it."""
        how = "encrypted, AES-256-CBC" if self.encrypted else "unencrypted"
        return "\n".join(
            [
                f"private key: {self.private_path} (PKCS#8, {how}, mode 0600)",
                f"public key:  {self.public_path}",
                f"fingerprint: {self.fingerprint}",
                "",
                "Run this in Snowflake as a role that may alter the user (e.g. SECURITYADMIN):",
                "",
                self.alter_user_sql,
                "",
                "Then `DESC USER` must show RSA_PUBLIC_KEY_FP = " + self.fingerprint,
            ]
        )


def quote_identifier(name: str) -> str:
    """A user name as a Snowflake identifier: bare when plain (upper-cased), else double-quoted."""
    if _PLAIN_IDENTIFIER.match(name):
        return name.upper()
    return '"' + name.replace('"', '""') + '"'


def alter_user_statement(user: str, public_pem: bytes) -> str:
    """`ALTER USER <user> SET RSA_PUBLIC_KEY='<base64 DER, no PEM armour>';`."""
    body = "".join(
        line.strip()
        for line in public_pem.decode("ascii").splitlines()
        if line.strip() and not line.startswith("-----")
    )
    return f"ALTER USER {quote_identifier(user)} SET RSA_PUBLIC_KEY='{body}';"


def generate(
    out_dir: Path,
    name: str = "rsa_key",
    passphrase: bytes | None = None,
    bits: int = 2048,
    *,
    user: str = "STREAMD",
    force: bool = False,
) -> KeyPairFiles:
    """Write `<name>.p8` (0600) and `<name>.pub` (0644) under `out_dir` and return what was written.

    The private key is PKCS#8 PEM, encrypted with `passphrase` when one is given (cryptography's
    BestAvailableEncryption: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, which Snowflake's
    clients and `openssl pkcs8` read). Existing files are refused unless `force`: overwriting a
    registered key locks the daemon out until `ALTER USER` runs again. `out_dir` is created 0700.
    """
    if bits < MIN_KEY_BITS:
        raise ConfigError(
            f"keygen: {bits}-bit keys are too small; Snowflake needs ≥ {MIN_KEY_BITS}"
        )
    if passphrase is not None and not passphrase:
        raise ConfigError("keygen: the passphrase is empty; set one or omit it for no encryption")
    private_path = out_dir / f"{name}.p8"
    public_path = out_dir / f"{name}.pub"
    if not force:
        # Check both before writing either, so a refusal never leaves half a pair behind.
        for path in (private_path, public_path):
            if path.exists():
                raise ConfigError(
                    f"{path} exists; pass --force to replace it "
                    "(the old key stops working once ALTER USER registers the new one)"
                )
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path, pem, mode in (
        (private_path, private_pem, PRIVATE_MODE),
        (public_path, public_pem, PUBLIC_MODE),
    ):
        try:
            write_atomically(path, pem, mode=mode, replace=force)
        except FileExistsError:
            # Appeared since the check above: refused rather than clobbered.
            raise ConfigError(f"{path} exists; pass --force to replace it") from None
    return KeyPairFiles(
        private_path=private_path,
        public_path=public_path,
        fingerprint=public_key_fingerprint(key),
        alter_user_sql=alter_user_statement(user, public_pem),
        encrypted=passphrase is not None,
    )


def command(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for <name>.p8 and <name>.pub (created 0700).")
    ] = Path("."),
    user: Annotated[
        str, typer.Option("--user", help="Snowflake user named in the ALTER USER statement.")
    ] = "STREAMD",
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env",
            help="Encrypt the private key (AES-256-CBC) with the passphrase in this variable.",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "rsa_key",
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
) -> None:
    """Write an RSA key pair (PKCS#8; 0600/0644) and print ALTER USER … SET RSA_PUBLIC_KEY."""
    passphrase = None
    if passphrase_env is not None:  # from the environment, never argv (ps, shell history)
        value = os.environ.get(passphrase_env, "")
        if not value:
            fail(f"--passphrase-env: {passphrase_env} is not set or empty; export it first", 2)
        passphrase = value.encode()
    with one_line_errors():
        try:
            files = generate(out, name, passphrase, user=user, force=force)
        except OSError as exc:
            fail(f"--out {out}: {exc.strerror or exc}; choose a directory streamd can write to")
    typer.echo(files.describe())
