"""The stand-in's throwaway CA and certificate."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509

from streamd.standin.http.tls import ensure_self_signed

# ---- retry memory -------------------------------------------------------------------------


def test_self_signed_ca_and_cert_cover_loopback_and_are_reused(tmp_path: Path) -> None:
    files = ensure_self_signed(tmp_path / "tls")
    assert files.ca is not None
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(
        days=300
    )
    assert files.key.stat().st_mode & 0o077 == 0  # the key is private
    first = files.ca.read_bytes()
    assert ensure_self_signed(tmp_path / "tls").ca == files.ca
    assert files.ca.read_bytes() == first  # reused: a client's SSL_CERT_FILE stays valid
    ensure_self_signed(tmp_path / "tls", ("127.0.0.2",))
    assert files.ca.read_bytes() != first  # a new name needs a new certificate
