"""RSA key pairs for key-pair JWT auth: generation with safe file modes."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streamd.atomic_write import write_atomically


def generate_key_pair(bits: int = 2048) -> tuple[bytes, bytes]:
    """A new (PKCS#8 private PEM, SubjectPublicKeyInfo public PEM) pair, unencrypted."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def write_private(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, pem, mode=0o600)


def local_key_pair(directory: Path) -> tuple[bytes, bytes]:
    """The embedded target's key pair, created on first use, so the stand-in verifies real JWTs."""
    private_path = directory / "rsa_key.p8"
    public_path = directory / "rsa_key.pub"
    if private_path.exists() and public_path.exists():
        return private_path.read_bytes(), public_path.read_bytes()
    private, public = generate_key_pair()
    write_private(private_path, private)
    write_atomically(public_path, public, mode=0o644)
    return private, public
