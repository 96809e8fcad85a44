"""The private-key file mode check that config loading runs on `target.private_key = "file:…"`."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamd.config.secrets import check_private_key_file
from streamd.errors import ConfigError


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_permission_check_refuses_group_or_other_bits(tmp_path: Path, mode: int) -> None:
    """Any group/other bit is refused with the exact fix in one line."""
    key = tmp_path / "rsa_key.p8"
    key.write_bytes(b"x")
    key.chmod(mode)
    with pytest.raises(ConfigError) as info:
        check_private_key_file(key)
    assert str(info.value) == (
        f"{key} is readable by group/others (mode {mode:04o}); run chmod 600 {key}"
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_permission_check_accepts_owner_only(tmp_path: Path, mode: int) -> None:
    """0600 (keygen) and 0400 (systemd credentials) pass; a missing file is left to the reader."""
    key = tmp_path / "rsa_key.p8"
    key.write_bytes(b"x")
    key.chmod(mode)
    check_private_key_file(key)
    check_private_key_file(tmp_path / "missing.p8")
