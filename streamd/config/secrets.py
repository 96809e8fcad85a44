"""Secret references in config: `env:NAME`, `file:/path` or a literal, resolved to a `SecretStr`.

Lives outside `streamd.config.model` so that component config models (sources, which `config` imports)
can resolve their own secrets without an import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr


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
