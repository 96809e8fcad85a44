"""Whom the client trusts: the stand-in serving TLS with a CA of its own, as a corporate proxy would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamd.snowflake.keys import generate_key_pair, write_private
from streamd.testing import start_standin_process


def _run(tmp_path: Path, url: str, extra: str) -> subprocess.CompletedProcess[str]:
    private, _ = generate_key_pair()
    write_private(tmp_path / "key.p8", private)
    config = tmp_path / "streamd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[target]\nkind = "snowflake"\nurl = "{url}"\nprivate_key = "file:{tmp_path / "key.p8"}"\n'
        f"{extra}\n"
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\nstartup_timeout_s = 20\n[admin]\nport = 0\n"
        '[[sources]]\nkind = "manufacturing"\nequipment_count = 2\nline_count = 1\nproduct_count = 1\n'
    )
    # Only the system store and target.ca_file may decide: no CA smuggled in through the env.
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "streamd", "run", "--config", str(config), "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_own_ca_trusted_with_ca_file_and_named_without_it(tmp_path: Path) -> None:
    proc, url = start_standin_process(tmp_path / "standin", "--tls")
    try:
        assert proc.stderr is not None
        ca_file = proc.stderr.readline().split("=", 1)[1].strip()

        trusted = _run(tmp_path / "with", url, f'ca_file = "{ca_file}"')
        assert trusted.returncode == 0, trusted.stderr[-2000:]

        untrusted = _run(tmp_path / "without", url, "")
        assert untrusted.returncode == 1
        last = untrusted.stderr.strip().splitlines()[-1]
        assert "TLS certificate is not trusted" in last
        assert "target.ca_file" in last
        assert (
            "request_retried" not in untrusted.stderr
        )  # said at the first failure, not after retries
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def test_a_ca_file_that_is_not_a_bundle_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    done = _run(tmp_path, "https://127.0.0.1:9", f'ca_file = "{bad}"')
    assert done.returncode == 2
    assert "target.ca_file" in done.stderr
    assert "not a readable PEM bundle" in done.stderr
