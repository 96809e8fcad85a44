"""The HTTP client every call to the target goes through: whom it trusts, and through which proxy."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

import httpx
import truststore


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """`ca_file`'s CAs when given, else the operating system's trust store (not certifi's bundle)."""
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def target_client(
    *,
    ca_file: Path | None,
    proxy: str | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient for the target; without `proxy`, the standard proxy variables apply."""
    return httpx.AsyncClient(
        timeout=timeout, headers=headers, verify=tls_context(ca_file), proxy=proxy, trust_env=True
    )
