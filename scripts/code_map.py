"""Write README.md's code map from the tree: one line per folder, each naming its modules.

The map is generated, never edited by hand: each folder of `streamd/` is described by the first
line of its `__init__.py` docstring and lists its modules; each top-level module of `streamd/` by
the first line of its own docstring. The other top-level folders get a fixed description and their
files as they are on disk. It goes between the code-map markers in README.md.

    python scripts/code_map.py           # rewrite the map in README.md
    python scripts/code_map.py --check   # exit 1 if README.md's map is not what the tree gives
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- code-map:start -->"
END = "<!-- code-map:end -->"
PACKAGE = "streamd"
OTHER_FOLDERS = {
    "tests": "`unit/` mirrors `streamd/` (`unit/<package path>/test_<module>.py`, fast and pure),"
    " `integration/` drives the real daemon against the real stand-in",
    "sql": "the Snowflake SQL `streamd setup` runs, one folder per pipeline",
    "config": "configs: the annotated example, local stand-in runs, the pipelines demo",
    "bench": "speed is measured here, not asserted in tests",
    "docs": "operating notes",
    "systemd": "the unit file and its environment and config examples",
    ".ci": "what CI runs (`run`) and its container and lock checks",
    "scripts": "generators: this code map, the Sparkplug B protobuf module",
}
SKIP = {"__pycache__", "__init__.py"}


def first_line(path: Path) -> str:
    """The first line of a module's docstring, or "" when it has none."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    return doc.strip().splitlines()[0].strip() if doc else ""


def _code(names: list[str]) -> str:
    return " ".join(f"`{n}`" for n in names)


def _package_lines(folder: Path, root: Path, depth: int) -> list[str]:
    """One line for `folder` (docstring + modules), then one per subpackage below it."""
    indent = "  " * depth
    modules = sorted(p.name for p in folder.glob("*.py") if p.name not in SKIP)
    subpackages = sorted(p for p in folder.iterdir() if (p / "__init__.py").is_file())
    rel = folder.relative_to(root).as_posix() + "/"
    doc = first_line(folder / "__init__.py")
    if depth == 0:
        lines = [f"- **`{rel}`** — {doc}"]
        # Top-level modules: one line each, so a module's purpose is one glance away.
        lines += [f"  - `{name}` — {first_line(folder / name)}" for name in modules]
    else:
        lines = [f"{indent}- **`{folder.name}/`** — {doc} {_code(modules)}".rstrip()]
    for sub in subpackages:
        lines += _package_lines(sub, root, depth + 1)
    return lines


def _folder_line(root: Path, name: str, what: str) -> str:
    folder = root / name
    if not folder.is_dir():
        return ""
    entries = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in folder.iterdir()
        if p.name not in SKIP and not p.name.startswith(".") and not p.name.endswith(".pyc")
    )
    return f"- **`{name}/`** — {what}: {_code(entries)}"


def render(root: Path = ROOT) -> str:
    """The map for the tree at `root`, without the markers."""
    lines = _package_lines(root / PACKAGE, root, 0)
    lines += [line for n, w in OTHER_FOLDERS.items() if (line := _folder_line(root, n, w))]
    return "\n".join(lines) + "\n"


def replaced(readme: str, body: str) -> str:
    """`readme` with the text between the markers replaced by `body`."""
    try:
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        raise SystemExit(f"README.md has no {START} ... {END} section") from None
    return f"{head}{START}\n{body}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    readme_path = args.root / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    wanted = replaced(readme, render(args.root))
    if args.check:
        if wanted != readme:
            sys.stderr.write("README.md's code map is stale: run `python scripts/code_map.py`\n")
            return 1
        return 0
    if wanted != readme:
        readme_path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
