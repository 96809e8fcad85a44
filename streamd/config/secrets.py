"""Secret references in config: `env:NAME`, `file:/path` or a literal, resolved to a `SecretStr`.

A `file:` private key readable by group or others is refused with the `chmod` that fixes it
(the same stance as ssh with `~/.ssh/id_rsa`).

Lives outside `streamd.config.model` so that component config models (sources, which `config` imports)
can resolve their own secrets without an import cycle.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import SecretStr

from streamd.errors import ConfigError


def resolve_secret(value: str, *, key: str) -> SecretStr:
    """Resolve `env:NAME`, `file:/path` or a literal into a secret that never prints.

    `key` names the config key in error messages, so the operator knows what to fix.
    """
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set; export it or change {key}")
        return SecretStr(os.environ[name])
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            return SecretStr(path.read_text().rstrip("\r\n"))
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}; fix the path in {key}") from None
    return SecretStr(value)


def check_private_key_file(path: Path) -> None:
    """Refuse a private key file that group or others may read, with the chmod that fixes it.

    Only the mode is judged; a file that cannot be stat'ed passes here, so the read that follows
    reports it with its own message. Credentials that systemd's `LoadCredential=` provides are
    0400 and pass.
    """
    try:
        st = path.stat()
    except OSError:
        return
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise ConfigError(
            f"{path} is readable by group/others (mode {mode:04o}); run chmod 600 {path}"
        )
