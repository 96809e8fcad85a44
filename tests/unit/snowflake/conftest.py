"""Fixtures for the Snowflake wire-client tests: the fixed test key and a scoped-token factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.snowflake.auth import load_private_key
from streamd.testing import ManualClock

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def rsa_key() -> RSAPrivateKey:
    return load_private_key((DATA / "rsa_key.p8").read_bytes(), None, source="rsa_key.p8")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


ScopedJwt = Callable[..., str]


@pytest.fixture
def scoped_jwt() -> ScopedJwt:
    """Builds scoped tokens like the service's: JWTs whose `exp` the client reads unverified."""

    def make(*, iat: float, lifetime: float, marker: str = "t") -> str:
        claims = {"iat": int(iat), "exp": int(iat + lifetime), "m": marker}
        return jwt.encode(claims, "x" * 32, algorithm="HS256")

    return make
