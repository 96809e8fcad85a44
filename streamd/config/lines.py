"""Where each key of a TOML document is written, so config errors can name a line.

`tomllib` keeps no positions, so this scans the text: table headers, arrays of tables and
`key = value` lines. Good enough for config files people write by hand; anything it cannot place
falls back to the nearest enclosing table's header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")


def _split(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in dotted.split(".")]


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each key path (strings for keys, ints for array-of-table indexes) to its 1-based line."""
    lines: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str | int, ...], int] = {}
    prefix: tuple[str | int, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(raw)
        if header:
            parts = _split(header.group(2))
            if header.group(1) == "[[":
                base = (*_resolve(parts[:-1], counters), parts[-1])
                index = counters.get(base, -1) + 1
                counters[base] = index
                prefix = (*base, index)
            else:
                prefix = _resolve(parts, counters)
            lines.setdefault(prefix, number)
            continue
        key = _KEY.match(raw)
        if key:
            path = (*prefix, *_split(key.group(1)))
            lines.setdefault(path, number)
    return lines


def _resolve(parts: list[str], counters: dict[tuple[str | int, ...], int]) -> tuple[str | int, ...]:
    """A header path, with each array-of-tables segment pointing at its latest element."""
    resolved: list[str | int] = []
    for part in parts:
        resolved.append(part)
        index = counters.get(tuple(resolved))
        if index is not None:
            resolved.append(index)
    return tuple(resolved)


def locate(loc: Sequence[str | int], lines: dict[tuple[str | int, ...], int]) -> tuple[str, int]:
    """The dotted key for a pydantic error location and the best line for it."""
    # Discriminated unions add the tag (e.g. "manufacturing") to the location; it is not a key.
    path = tuple(part for i, part in enumerate(loc) if not _is_union_tag(loc, i))
    dotted = ""
    for part in path:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return dotted or "(root)", line
    return dotted or "(root)", 1


def _is_union_tag(loc: Sequence[str | int], index: int) -> bool:
    return index > 0 and isinstance(loc[index - 1], int) and loc[0] == "sources" and index == 2
