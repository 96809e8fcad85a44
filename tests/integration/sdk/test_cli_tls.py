"""`streamd standin serve --tls` as a user runs it: HTTPS on one port, the CA path printed."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx

from streamd.standin.http.tls import ensure_self_signed
from streamd.testing import start_standin_process
from tests.conftest import StandinFactory


def test_serve_tls_prints_the_ca_and_answers_over_https(tmp_path: Path) -> None:
    proc, url = start_standin_process(tmp_path / "standin", "--tls")
    try:
        assert url.startswith("https://127.0.0.1:")
        assert proc.stderr is not None
        ca_line = proc.stderr.readline()
        assert ca_line.startswith("stand-in CA: SSL_CERT_FILE=")
        ca_file = Path(ca_line.split("=", 1)[1].strip())
        assert ca_file == (tmp_path / "standin" / "tls" / "ca.pem").resolve()
        verify = ssl.create_default_context(cafile=str(ca_file))
        r = httpx.get(
            f"{url}/v2/streaming/hostname",
            headers={"Authorization": "Bearer any"},
            verify=verify,
            timeout=30,
        )
        assert (r.status_code, r.text, r.http_version) == (200, "127.0.0.1", "HTTP/1.1")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_tls_cert_without_key_is_a_one_line_error(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "streamd", "standin", "serve", "--tls-cert", str(cert)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "streamd: --tls-cert and --tls-key go together: give both, or neither"
    ]


def test_users_own_certificate_is_served(make_standin: StandinFactory, tmp_path: Path) -> None:
    own = ensure_self_signed(tmp_path / "mine")  # stands in for a certificate the user has
    assert own.ca is not None
    standin = make_standin(tls_cert=own.cert, tls_key=own.key)
    assert standin.url.startswith("https://")
    assert standin.ca_file is None  # nothing generated: the user knows their own CA
    assert not (tmp_path / "standin" / "tls").exists()
    verify = ssl.create_default_context(cafile=str(own.ca))
    r = httpx.get(
        f"{standin.url}/v2/streaming/hostname",
        headers={"Authorization": "Bearer any"},
        verify=verify,
        timeout=30,
    )
    assert r.text == "127.0.0.1"
