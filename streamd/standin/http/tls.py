"""HTTPS for the stand-in: a throwaway CA and a server certificate for the loopback address.

Snowflake's official SDK refuses `http://` URLs (official-sdk-wire §0): it only talks to the
stand-in over TLS, trusting a private CA through `SSL_CERT_FILE`. Without a user certificate the
stand-in makes its own under `<data_dir>/tls/`: a CA (`ca.pem`, the file to trust) and a
certificate for 127.0.0.1, ::1 and `localhost` (plus the advertised host) signed by it. They are
reused across restarts while they cover the wanted names and have more than a day left, so a
client's `SSL_CERT_FILE` stays valid.

Built with `cryptography`, already a runtime dependency (JWT signing), rather than `trustme`,
which is a test-only library and would add a dependency to the served product.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from streamd.atomic_write import write_atomically
from streamd.errors import StreamdError

CA_LIFETIME = datetime.timedelta(days=3650)
CERT_LIFETIME = datetime.timedelta(days=825)
RENEW_BEFORE = datetime.timedelta(days=1)
DEFAULT_NAMES = ("127.0.0.1", "::1", "localhost")


class TlsError(StreamdError):
    """The TLS material given or found cannot be used; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files uvicorn serves with; `ca` is what clients trust (None for the user's own cert)."""

    cert: Path
    key: Path
    ca: Path | None


def user_tls(cert: Path, key: Path) -> TlsFiles:
    """The user's own certificate and key, checked to exist and to parse."""
    for path in (cert, key):
        if not path.is_file():
            raise TlsError(f"TLS file {path} does not exist; pass an existing PEM file")
    try:
        x509.load_pem_x509_certificates(cert.read_bytes())
    except ValueError as err:
        raise TlsError(f"--tls-cert {cert} is not a PEM certificate: {err}") from err
    return TlsFiles(cert, key, None)


def ensure_self_signed(directory: Path, names: tuple[str, ...] = ()) -> TlsFiles:
    """A CA and a server certificate under `directory`, reused while they still fit."""
    wanted = tuple(dict.fromkeys((*DEFAULT_NAMES, *names)))
    ca_path = directory / "ca.pem"
    files = TlsFiles(directory / "server.pem", directory / "server-key.pem", ca_path)
    if _still_good(files, wanted):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamd stand-in local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in wanted]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    write_atomically(ca_path, ca_cert.public_bytes(pem), mode=0o644)
    write_atomically(files.cert, cert.public_bytes(pem) + ca_cert.public_bytes(pem), mode=0o644)
    write_atomically(
        files.key,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        mode=0o600,
    )
    # The CA's own key is not kept: nothing else is ever signed with it, so nothing can be forged.
    return files


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _still_good(files: TlsFiles, wanted: tuple[str, ...]) -> bool:
    if not (files.cert.is_file() and files.key.is_file() and files.ca and files.ca.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in sans.get_values_for_type(x509.IPAddress)} | set(
        sans.get_values_for_type(x509.DNSName)
    )
    covered = all(str(ipaddress.ip_address(n)) in have if _is_ip(n) else n in have for n in wanted)
    fresh = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE
    return covered and fresh


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
