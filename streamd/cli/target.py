"""How `streamd sql` and `streamd setup` reach the configured target's SQL API."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.clock import Clock
from streamd.config.model import Config
from streamd.errors import ConfigError
from streamd.snowflake.auth import KeyPairAuth, load_private_key
from streamd.snowflake.sql_api import SqlApiClient


def account_key(config: Config) -> RSAPrivateKey:
    """The real account's private key, from `target.private_key` and its passphrase."""
    if config.target.private_key is None:
        raise ConfigError('target.private_key: required for kind = "snowflake"')
    pw = config.target.private_key_passphrase
    return load_private_key(
        config.target.private_key.get_secret_value().encode(),
        pw.get_secret_value().encode() if pw else None,
        source="target.private_key",
    )


def sql_api_client(
    http: httpx.AsyncClient, config: Config, url: str, key: RSAPrivateKey, clock: Clock
) -> SqlApiClient:
    """A SQL API client at `url`, signing as the configured account and user with `key`."""
    auth = KeyPairAuth(key, config.target.account, config.target.user, clock, config.target.role)
    return SqlApiClient(http, auth, url, clock)
