"""Key-pair JWTs and the Snowpipe Streaming scoped token, cached against the injected clock.

`snowflake-apis.md` §1.1 (JWT, fingerprint, account normalisation) and §2.3–§2.4 (ingest host,
scoped token); `official-sdk-wire.md` §2–§3 for what the real service and SDK put on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import anyio
import httpx
import jwt
import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.clock import Clock
from streamd.errors import ConfigError, FatalError
from streamd.snowflake.codes import error_for, map_transport_errors

MIN_KEY_BITS = 2048
JWT_LIFETIME_S = 3540
"""59 minutes, as `snowflake-ingest` does; Snowflake honours at most 1 h after `iat` (§1.1)."""
JWT_REMINT_AFTER_S = 54 * 60
"""Re-sign after 54 minutes so a JWT never reaches a server with less than 5 minutes left."""
SCOPED_REFRESH_MARGIN_S = 60.0
"""Exchange a new scoped token this long before the old one expires (§2.4 [REC])."""
SCOPED_DEFAULT_LIFETIME_S = 3600.0
"""Assumed lifetime of a scoped token that does not decode as a JWT; undocumented (§6 item 7)."""

_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?$")


def load_private_key(pem: bytes, passphrase: bytes | None, *, source: str) -> RSAPrivateKey:
    """Load an RSA private key (PKCS#8 PEM, optionally encrypted) for key-pair auth.

    Every failure is a one-line `ConfigError` naming `source` (the config key or file path) and
    the fix; the key material never appears in it. PKCS#1 ("BEGIN RSA PRIVATE KEY") is accepted
    too, since the service only ever sees the public half.
    """
    if b"-----BEGIN" not in pem:
        raise ConfigError(
            f"{source}: not a PEM private key; convert it with "
            "`openssl pkcs8 -topk8 -inform PEM -in key.pem -out rsa_key.p8`"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError:
        # cryptography raises TypeError for "encrypted but no password" and the reverse.
        if passphrase:
            raise ConfigError(
                f"{source}: the key is not encrypted but a passphrase was given; "
                "remove the passphrase"
            ) from None
        raise ConfigError(
            f"{source}: the key is encrypted; set its passphrase (e.g. `private_key_passphrase`)"
        ) from None
    except UnsupportedAlgorithm:
        raise ConfigError(
            f"{source}: the key's encryption is not supported; re-encrypt it with AES-256-CBC "
            "(`openssl pkcs8 -topk8 -v2 aes-256-cbc`)"
        ) from None
    except ValueError:
        # Wrong passphrase and corrupt PEM are indistinguishable to cryptography.
        hint = "check the passphrase" if passphrase else "check the file is a complete PEM key"
        raise ConfigError(f"{source}: cannot read the private key; {hint}") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(
            f"{source}: the key is {type(key).__name__.removeprefix('_')}, not RSA; "
            "generate one with "
            "`openssl genrsa 2048 | openssl pkcs8 -topk8 -nocrypt -out rsa_key.p8`"
        )
    if key.key_size < MIN_KEY_BITS:
        raise ConfigError(
            f"{source}: the RSA key has {key.key_size} bits; Snowflake needs at least "
            f"{MIN_KEY_BITS}, generate a new one with `openssl genrsa 2048`"
        )
    return key


def public_key_fingerprint(key: RSAPrivateKey) -> str:
    """`SHA256:<std base64 of sha256(DER SubjectPublicKeyInfo)>`, as `DESC USER` shows it (§1.1)."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def normalise_account(account: str) -> str:
    """The account as it appears in JWT claims, following Snowflake's `parse_account` (§1.1).

    Split on `.`: no dot → as is; second label `global` → first label cut at its last `-`;
    otherwise the first label (drops region/cloud/privatelink). Upper-cased.

    One addition, for the SQL form `org.account` (§1.1: "periods … replaced by a hyphen"): with
    exactly two labels whose second has no `-`, the second is an account name, not a region
    (account names never contain `-`, region names always do), so it becomes `ORG-ACCOUNT`.
    Underscores are kept: the docs are silent on them for the JWT.
    """
    text = account.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if not text:
        raise ConfigError("account: empty; set it to ORGNAME-ACCOUNTNAME (or the account locator)")
    labels = text.split(".")
    if len(labels) == 1:
        name = labels[0]
    elif labels[1].lower() == "global":
        name = labels[0].rsplit("-", 1)[0]
    elif len(labels) == 2 and "-" not in labels[1] and labels[1].lower() != "privatelink":
        name = f"{labels[0]}-{labels[1]}"
    else:
        name = labels[0]
    return name.upper()


def mint_jwt(
    key: RSAPrivateKey,
    account: str,
    user: str,
    *,
    now: float,
    lifetime_s: int = JWT_LIFETIME_S,
    role: str | None = None,
) -> str:
    """A key-pair JWT (RS256): iss `ACCOUNT.USER.SHA256:<fp>`, sub `ACCOUNT.USER`, iat/exp in s.

    With a role, `scp` is `session:role:<ROLE>`, as Snowflake's own streaming SDK sends it: the
    scoped token, and so every channel call, then runs under that role, not the user's default.
    """
    subject = f"{normalise_account(account)}.{user.strip().upper()}"
    issued = int(now)
    claims = {
        "iss": f"{subject}.{public_key_fingerprint(key)}",
        "sub": subject,
        "iat": issued,
        "exp": issued + lifetime_s,
    }
    if role:
        claims["scp"] = f"session:role:{role_name(role)}"
    return jwt.encode(claims, key, algorithm="RS256")


def role_name(role: str) -> str:
    """A role as Snowflake resolves it: upper-cased unless written as a quoted identifier."""
    role = role.strip()
    return role[1:-1] if len(role) > 1 and role[0] == role[-1] == '"' else role.upper()


class KeyPairAuth:
    """Mints key-pair JWTs for one account and user, re-signing after 54 minutes on the clock."""

    def __init__(
        self, key: RSAPrivateKey, account: str, user: str, clock: Clock, role: str | None = None
    ) -> None:
        self._key = key
        self.account = normalise_account(account)
        self.user = user.strip().upper()
        self.role = role
        self.fingerprint = public_key_fingerprint(key)
        self.clock = clock
        self._token: str | None = None
        self._minted_at = 0.0

    def jwt(self) -> str:
        """The current JWT; cheap to call per request."""
        now = self.clock.monotonic()
        if self._token is None or now - self._minted_at >= JWT_REMINT_AFTER_S:
            self._token = mint_jwt(
                self._key, self.account, self.user, now=self.clock.wall(), role=self.role
            )
            self._minted_at = now
        return self._token

    def __repr__(self) -> str:
        return (
            f"KeyPairAuth(account={self.account!r}, user={self.user!r}, role={self.role!r}, "
            f"key={self.fingerprint!r})"
        )


class StreamingAuth:
    """Discovers the ingest host and keeps a scoped token for it (§2.3, §2.4).

    Both are fetched lazily and shared by every channel; concurrent callers wait for one exchange.
    """

    def __init__(
        self, http: httpx.AsyncClient, key_auth: KeyPairAuth, control_url: str, clock: Clock
    ) -> None:
        self._http = http
        self._key_auth = key_auth
        self._control = httpx.URL(control_url.rstrip("/"))
        self.clock = clock
        self._host: str | None = None
        self._ingest_url: str | None = None
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = anyio.Lock()

    async def ingest_url(self) -> str:
        """Base URL of the ingest host (`scheme://host[:port]`, no trailing slash)."""
        if self._ingest_url is None:
            async with self._lock:
                if self._ingest_url is None:
                    await self._discover()
        assert self._ingest_url is not None
        return self._ingest_url

    async def scoped_token(self) -> str:
        """The scoped token for the ingest host, exchanged again 60 s before it expires."""
        token = self._token
        if token is not None and self.clock.monotonic() < self._refresh_at:
            return token
        async with self._lock:
            if self._token is None or self.clock.monotonic() >= self._refresh_at:
                if self._host is None:
                    await self._discover()
                await self._exchange()
            assert self._token is not None
            return self._token

    def invalidate_scoped_token(self, stale: str | None = None) -> None:
        """Forget the scoped token after a 401 from the ingest host, so the next call re-exchanges.

        Pass the token that was refused as `stale`: when many channels hit the same 401 at once,
        only the first invalidation counts and the others reuse the fresh token.
        """
        if stale is None or stale == self._token:
            self._token = None

    def reset(self) -> None:
        """Forget the ingest host and the token (e.g. after a pipe failover, HTTP 410)."""
        self._host = None
        self._ingest_url = None
        self._token = None

    def _jwt_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._key_auth.jwt()}",
            "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
            "Accept": "application/json, text/plain",
        }

    def _what(self, action: str) -> str:
        # Names the identity and the public fingerprint: enough to match `DESC USER` output.
        ka = self._key_auth
        return f"{action} for {ka.account}.{ka.user} (key {ka.fingerprint})"

    async def _control_call(
        self, method: str, path: str, what: str, data: dict[str, str] | None = None
    ) -> httpx.Response:
        """One key-pair-JWT call on the control host; anything but 200 becomes a typed error."""
        with map_transport_errors(ambiguous=False, what=what):
            response = await self._http.request(
                method, str(self._control.join(path)), headers=self._jwt_headers(), data=data
            )
        if response.status_code != 200:
            raise error_for(
                response.status_code,
                response.content,
                response.headers,
                what=what,
                now=self.clock.wall(),
            )
        return response

    async def _discover(self) -> None:
        what = self._what(f"get ingest hostname from {self._control}")
        response = await self._control_call("GET", "/v2/streaming/hostname", what)
        # The docs say JSON `{"hostname": …}`, the service sends plain text (§2.3, wire note §3).
        raw = _json_or_text(response.content, "hostname")
        # Account names may hold `_`, host names may not (§2.3 known issue).
        host = raw.replace("_", "-")
        if "://" in host:
            host = host.split("://", 1)[1]
        host = host.rstrip("/")
        if not _HOST_RE.match(host):
            raise FatalError(
                f"{what} failed: the answer is not a host name; "
                "check `control_url` points at Snowflake"
            )
        self._host = host
        self._ingest_url = self._ingest_base(host)

    def _ingest_base(self, host: str) -> str:
        # The real service returns a bare host; the official SDK puts the configured port on it
        # (wire note §3). A host that already carries a port (the stand-in) is used as is.
        url = httpx.URL(f"{self._control.scheme}://{host}")
        if url.port is None and self._control.port is not None:
            return f"{self._control.scheme}://{host}:{self._control.port}"
        return f"{self._control.scheme}://{host}"

    async def _exchange(self) -> None:
        assert self._host is not None
        what = self._what(f"exchange scoped token for {self._host}")
        response = await self._control_call(
            "POST", "/oauth/token", what, data={"grant_type": _JWT_BEARER, "scope": self._host}
        )
        token = _json_or_text(response.content, "token")
        if not token or any(ch.isspace() for ch in token):
            raise FatalError(f"{what} failed: the answer is not a token")
        self._token = token
        self._refresh_at = self.clock.monotonic() + _refresh_delay(token, self.clock.wall())

    def __repr__(self) -> str:
        state = "token" if self._token is not None else "no token"
        return (
            f"StreamingAuth(control={str(self._control)!r}, ingest={self._ingest_url!r}, {state})"
        )


def _refresh_delay(token: str, wall_now: float) -> float:
    """Seconds until the token should be exchanged again.

    The scoped token's lifetime is undocumented; it is a JWT whose `exp` the SDK and Artie read
    (§2.4, wire note §2). The lifetime is taken as `exp - iat` when both are present, so a skewed
    local clock does not matter; else `exp - now`; else one hour. A short-lived token is used for
    half its life rather than being re-exchanged on every call (the SDK's storm, wire note §2).
    """
    lifetime = SCOPED_DEFAULT_LIFETIME_S
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    exp = _epoch_seconds(claims.get("exp"))
    iat = _epoch_seconds(claims.get("iat"))
    if exp is not None:
        lifetime = exp - iat if iat is not None and iat < exp else exp - wall_now
    if lifetime <= 0:
        # Already expired by our clock: the server just issued it, so our clock is wrong. Use it
        # briefly; a 401 will force the exchange anyway.
        return SCOPED_REFRESH_MARGIN_S / 2
    return max(lifetime - SCOPED_REFRESH_MARGIN_S, lifetime / 2)


def _epoch_seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # The SDK's own JWTs use milliseconds (wire note §2); accept both.
    return value / 1000.0 if value > 100_000_000_000 else float(value)


def _json_or_text(body: bytes, key: str) -> str:
    """`body[key]` for a JSON object, the string for a JSON string, else the stripped text."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()
    if isinstance(parsed, dict):
        value = parsed.get(key)
        return value.strip() if isinstance(value, str) else ""
    if isinstance(parsed, str):
        return parsed.strip()
    return body.decode("utf-8", "replace").strip()
