"""How `streamd sql`, `setup` and `backfill` reach the target: its SQL API, or the local stand-in
(the running daemon's, or one started on its data dir for the length of the command)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.cli.standin import standin_settings
from streamd.clock import Clock, SystemClock
from streamd.config.model import Config
from streamd.errors import ConfigError
from streamd.install import needs_full_install
from streamd.snowflake.auth import KeyPairAuth, load_private_key
from streamd.snowflake.http import target_client
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


@asynccontextmanager
async def sql_client(config: Config, http_timeout_s: float) -> AsyncIterator[SqlApiClient]:
    """A SQL API client for the target (starting the local stand-in when nothing serves it)."""
    clock = SystemClock()
    async with target_client(
        ca_file=config.target.ca_file, proxy=config.target.proxy_url(), timeout=http_timeout_s
    ) as http:
        if config.target.kind != "local":
            key = account_key(config)
            yield sql_api_client(http, config, config.target.control_url(), key, clock)
            return
        async with local_target(config, "the local target (the embedded stand-in)") as url:
            from streamd.snowflake.keys import local_key_pair

            private_pem, _ = local_key_pair(Path(config.state_dir) / "local")
            key = load_private_key(private_pem, None, source="local key")
            yield sql_api_client(http, config, url, key, clock)


@asynccontextmanager
async def local_target(config: Config, feature: str) -> AsyncIterator[str]:
    """The URL of the local stand-in: the running daemon's, or one started here for the block."""
    from streamd.cli.inspect import DaemonNotRunning, fetch_status

    try:
        status = await anyio.to_thread.run_sync(lambda: fetch_status(config, timeout=1.0))
    except DaemonNotRunning:
        pass
    else:
        yield str(status["target"]["url"])
        return
    from streamd.snowflake.keys import local_key_pair

    with needs_full_install(feature):
        from streamd.standin.server import serve

    # sqlglot logs every statement it hands back as a Command (tasks, streams): noise here.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    state_dir = Path(config.state_dir)
    _, public_pem = local_key_pair(state_dir / "local")
    # Any free port: only this command talks to it, for the length of the block.
    settings = standin_settings(config.target.standin, state_dir / "standin", public_pem, port=0)
    async with anyio.create_task_group() as tg:
        standin = await tg.start(serve, settings)
        try:
            yield standin.url
        finally:
            tg.cancel_scope.cancel()
