"""Print pip constraints that pin every dependency of pyproject.toml to its declared lower bound.

Usage: ``python .ci/lowest_constraints.py [EXTRA ...] > lowest.txt``; then
``pip install -c lowest.txt -e ".[dev]"`` installs the lowest versions the project claims to
support. Each requirement must have a ``>=`` bound; ``--override NAME==VERSION`` replaces one
(torch stays at the local CPU wheel).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)\s*(;.*)?$")


def constraints(extras: list[str], overrides: dict[str, str]) -> list[str]:
    """One ``name==lower`` line (with its environment marker) per requirement."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    lines = []
    for req in reqs:
        match = _REQ.match(req)
        if match is None:
            raise SystemExit(f"lowest_constraints: {req!r} has no single '>=' lower bound")
        name, version, marker = match.groups()
        version = overrides.get(name.lower(), version)
        lines.append(f"{name}=={version}{marker or ''}")
    return lines


def main(argv: list[str]) -> None:
    overrides, extras = {}, []
    it = iter(argv)
    for arg in it:
        if arg == "--override":
            name, version = next(it).split("==")
            overrides[name.lower()] = version
        else:
            extras.append(arg)
    print("\n".join(constraints(extras, overrides)))


if __name__ == "__main__":
    main(sys.argv[1:])
