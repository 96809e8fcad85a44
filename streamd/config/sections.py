"""The sections of the root config that belong to no component: target, delivery, admin, log."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from streamd.config.base import FrozenModel
from streamd.config.secrets import check_private_key_file, resolve_secret
from streamd.errors import ConfigError

MAX_REQUEST_BYTES = 4_000_000
"""Uncompressed NDJSON bytes per append; Snowflake allows 4 MB on the wire after compression (§2.2)."""


class StandinConfig(FrozenModel):
    """The embedded local stand-in, started in-process for `target.kind = "local"`."""

    host: str = "127.0.0.1"
    """Loopback address the stand-in listens on."""
    port: int = Field(default=0, ge=0, le=65535)
    """TCP port; 0 lets the OS pick a free one."""
    commit_delay_ms: float = Field(default=1000, ge=0)
    """How long after an append the stand-in commits it (Snowflake commits asynchronously too)."""
    task_minute_s: float = Field(default=60.0, gt=0)
    """Seconds a minute of a task SCHEDULE or dynamic-table TARGET_LAG lasts in the stand-in; a
    demo can set 1 to see the `sql/` pipelines run every second."""


class TargetConfig(FrozenModel):
    """Where rows go: the embedded stand-in (`local`) or a real Snowflake account (`snowflake`)."""

    kind: Literal["local", "snowflake"] = "local"
    """`local` runs the embedded stand-in on loopback; `snowflake` talks to a real account."""
    account: str = "LOCAL"
    """Account identifier, preferably ORGNAME-ACCOUNTNAME (used in the JWT and the default URL)."""
    user: str = "STREAMD"
    """Snowflake user that owns the key pair."""
    role: str | None = None
    """Role for SQL API calls and streaming channels (the JWT's scope); the user's default role
    when unset."""
    url: str | None = None
    """Control-host URL; defaults to https://<account>.snowflakecomputing.com for `snowflake`."""
    private_key: SecretStr | None = None
    """PKCS#8 PEM private key: `file:/path/rsa_key.p8`, `env:NAME`, or the PEM text itself."""
    private_key_passphrase: SecretStr | None = None
    """Passphrase of an encrypted private key: `env:NAME` or `file:/path`."""
    ca_file: Path | None = None
    """PEM bundle of the certificate authorities to trust for the target (a TLS-inspecting proxy's
    or a private link's CA); unset: the operating system's trust store."""
    proxy: SecretStr | None = None
    """HTTP(S) proxy URL for every call to the target, e.g. `http://proxy:3128` (`env:NAME` or
    `file:/path` when it carries a password); unset: HTTPS_PROXY / HTTP_PROXY / NO_PROXY."""
    standin: StandinConfig = StandinConfig()
    """Settings of the embedded stand-in (used only when kind = "local")."""

    @field_validator("ca_file")
    @classmethod
    def _ca_file_readable(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        try:
            ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"{path}: not a readable PEM bundle of CA certificates ({exc})"
            ) from None
        return path

    @field_validator("private_key", "private_key_passphrase", "proxy", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            if info.field_name == "private_key" and value.startswith("file:"):
                try:
                    check_private_key_file(Path(value[5:]).expanduser())
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
            return resolve_secret(value, key=f"target.{info.field_name}")
        return value

    def proxy_url(self) -> str | None:
        """The configured proxy URL, if any (it may carry a password: never log it)."""
        return self.proxy.get_secret_value() if self.proxy else None

    def control_url(self) -> str:
        """The control host URL for a real account."""
        if self.url:
            return self.url.rstrip("/")
        return f"https://{self.account.lower().replace('_', '-')}.snowflakecomputing.com"


class DeliveryConfig(FrozenModel):
    """Batching, channels and the shutdown drain."""

    channel_prefix: str = Field(default="streamd", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    """This daemon's identity: channels are named `<prefix>_<TABLE>`; two daemons must differ."""
    channels_per_table: int = Field(default=1, ge=1, le=64)
    """Channels (and lanes) per table; rows of one producer always share a channel, so stay in
    order. Raise it when one channel's 10 requests/s or 20 MB/s is not enough."""
    lane_capacity: int = Field(default=10_000, ge=1)
    """Rows a table lane holds before sources wait (backpressure)."""
    max_rows: int = Field(default=10_000, ge=1)
    """Rows per append request at most."""
    max_bytes: int = Field(default=MAX_REQUEST_BYTES, ge=1024, le=MAX_REQUEST_BYTES)
    """Uncompressed NDJSON bytes per append at most (≤ 4,000,000 keeps the request under 4 MB)."""
    linger_ms: float = Field(default=200, ge=0)
    """How long the first row of a batch may wait for company before the batch is sent."""
    max_inflight_batches: int = Field(default=16, ge=1)
    """Batches appended but not yet committed, per channel, before the writer waits."""
    status_poll_ms: float = Field(default=25, ge=10)
    """Commit progress is read (one Bulk Channel Status call per pipe) from 3/4 of Snowflake's
    reported processing latency after each append, then again this often while the commit is
    not there yet (a tenth of that latency if longer); never two reads closer than this."""
    status_poll_max_ms: float = Field(default=2000, ge=10)
    """Once a commit is more than eight of Snowflake's latencies late, the wait between reads grows
    (a fifth of the further delay) up to this; rows in flight are looked for at least this often."""
    idle_status_interval_s: float = Field(default=60, gt=0)
    """How often idle channels are checked, so an expired or dropped channel is reopened early."""
    pace_requests_per_s: float = Field(default=10, gt=0)
    """Appends per second per channel at most (Snowflake's soft limit is 10)."""
    pace_bytes_per_s: float = Field(default=20_000_000, gt=0)
    """Uncompressed bytes per second per channel at most (Snowflake's soft limit is 20 MB/s)."""
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    """Content-Encoding of append bodies."""
    request_timeout_s: float = Field(default=30, gt=0)
    """Per-request HTTP timeout."""
    startup_timeout_s: float = Field(default=60, gt=0)
    """How long to keep trying to open the channels at start-up before giving up with an error."""
    drain_timeout_s: float = Field(default=30, gt=0)
    """On shutdown, how long to wait for in-flight rows to commit."""


class AdminConfig(FrozenModel):
    """The admin HTTP endpoint that `streamd inspect` talks to."""

    enabled: bool = True
    """Serve /status, /healthz and /metrics."""
    host: str = "127.0.0.1"
    """Listen address; keep it on loopback unless a proxy guards it."""
    port: int = Field(default=8765, ge=0, le=65535)
    """TCP port (0 picks a free one and writes it to <state_dir>/admin.url)."""


class LogConfig(FrozenModel):
    """Log output."""

    format: Literal["auto", "json", "console"] = "auto"
    """`auto` writes JSON lines unless stdout is a terminal."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level written."""
