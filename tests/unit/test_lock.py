"""The committed locks agree with pyproject.toml's ranges; `bash requirements/lock` refreshes them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")
_FIX = "run `bash requirements/lock` and commit the result"


def _pins(lock: str) -> dict[str, str]:
    text = (LOCKS / lock).read_text()
    pins = {canonicalize_name(m[1]): m[2] for m in map(_PIN.match, text.splitlines()) if m}
    assert pins, f"requirements/{lock} pins nothing"
    return pins


def _direct(lock: str) -> set[str]:
    """Names the lock says it pinned for streamd itself (`# via streamd (pyproject.toml)`)."""
    direct, name = set(), ""
    for line in (LOCKS / lock).read_text().splitlines():
        if m := _PIN.match(line):
            name = canonicalize_name(m[1])
        elif re.search(r"#\s+(via\s+)?streamd \(pyproject\.toml\)", line):
            direct.add(name)
    return direct


def _project() -> dict[str, list[Requirement]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {
        "main": [Requirement(r) for r in project["dependencies"]],
        "test": [Requirement(r) for r in project["optional-dependencies"]["test"]],
    }


@pytest.mark.parametrize(
    ("lock", "groups"), [("main.txt", ["main"]), ("test.txt", ["main", "test"])]
)
def test_every_range_in_pyproject_is_pinned_within_it(lock: str, groups: list[str]) -> None:
    pins = _pins(lock)
    wanted = [r for g in groups for r in _project()[g]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is in pyproject.toml but not in requirements/{lock}: {_FIX}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements/{lock} pins {name}=={pins[name]} outside pyproject's {req}: {_FIX}"
        )
    # A dependency dropped from pyproject.toml must leave the lock too.
    stale = _direct(lock) - {canonicalize_name(r.name) for r in wanted}
    assert not stale, f"requirements/{lock} still pins {sorted(stale)} for streamd: {_FIX}"


def test_every_pin_carries_hashes() -> None:
    for lock in ("test.txt", "main.txt", "streaming.txt"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", (LOCKS / lock).read_text())
        for block in blocks:
            if _PIN.match(block):
                assert "--hash=sha256:" in block, (
                    f"requirements/{lock}: {block.split()[0]} has no hash"
                )


@pytest.mark.parametrize("lock", ["main.txt", "streaming.txt"])
def test_runtime_locks_agree_with_the_test_lock(lock: str) -> None:
    everything = _pins("test.txt")
    for name, version in _pins(lock).items():
        assert everything.get(name) == version, (
            f"requirements/{lock} pins {name}=={version}, test.txt {everything.get(name)}: {_FIX}"
        )


def test_streaming_runtime_is_a_subset_of_the_dependencies() -> None:
    declared = {canonicalize_name(r.name) for r in _project()["main"]}
    lines = (LOCKS / "streaming.in").read_text().splitlines()
    names = {canonicalize_name(Requirement(s).name) for s in lines if s and not s.startswith("#")}
    assert names <= declared, f"streaming.in names {sorted(names - declared)} not in pyproject"
    pinned = _pins("streaming.txt")
    assert names <= set(pinned), f"streaming.txt lacks {sorted(names - set(pinned))}: {_FIX}"
    # What the slim image leaves out really is left out (streamd.install.FULL_ONLY's packages).
    assert not {"duckdb", "pyarrow", "sqlglot", "pyiceberg", "boto3"} & set(pinned)
