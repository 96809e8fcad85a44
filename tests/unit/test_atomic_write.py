"""`write_atomically`: exact modes from creation, all-or-nothing, and the existing-file policy."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamd.atomic_write import write_atomically


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_bytes_with_exact_mode(tmp_path: Path, strict_umask: None) -> None:
    private, public = tmp_path / "k.p8", tmp_path / "k.pub"
    write_atomically(private, b"secret", mode=0o600)
    write_atomically(public, b"public", mode=0o644)
    assert private.read_bytes() == b"secret"
    assert _mode(private) == 0o600
    # The umask would narrow 0644 to 0600; a public key must stay readable.
    assert _mode(public) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.p8", "k.pub"]


def test_secret_is_0600_before_any_byte_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, permissive_umask: None
) -> None:
    seen: list[tuple[str, int, int]] = []
    real_fdopen = os.fdopen

    def spy(fd: int, *args: object, **kwargs: object) -> object:
        st = os.fstat(fd)
        seen.append(("open", stat.S_IMODE(st.st_mode), st.st_size))
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", spy)
    write_atomically(tmp_path / "k.p8", b"secret", mode=0o600)
    assert seen == [("open", 0o600, 0)]


def test_failure_leaves_no_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path / "k.p8", b"secret", mode=0o600)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "server-key.pem"
    write_atomically(path, b"old", mode=0o600)

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output"):
        write_atomically(path, b"new", mode=0o600)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["server-key.pem"]


def test_replace_swaps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(b"old")
    path.chmod(0o600)
    write_atomically(path, b"new", mode=0o644)
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o644


def test_without_replace_an_existing_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "k.p8"
    path.write_bytes(b"registered key")
    with pytest.raises(FileExistsError):
        write_atomically(path, b"new key", mode=0o600, replace=False)
    assert path.read_bytes() == b"registered key"
    assert [p.name for p in tmp_path.iterdir()] == ["k.p8"]


def test_without_replace_a_new_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "k.p8"
    write_atomically(path, b"key", mode=0o600, replace=False)
    assert path.read_bytes() == b"key"
    assert _mode(path) == 0o600
    assert path.stat().st_nlink == 1
