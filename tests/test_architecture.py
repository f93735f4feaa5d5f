"""Lower layers never import higher ones: the layer table of docs/architecture.md, checked."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """Package (or top-level module) name -> layer number, from the table in the doc."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- layers: lowest first -->")[1].split("<!-- end layers -->")[0]
    out = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for name in re.findall(r"`([a-z_]+)`", cells[1]):
                out[name] = int(cells[0])
    return out


def package_of(path: Path) -> str:
    """``bci/align/srm.py`` -> ``align``; ``bci/metrics.py`` -> ``metrics``."""
    parts = path.relative_to(REPO / "bci").parts
    return parts[0].removesuffix(".py")


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, package) for every ``bci.<package>`` import in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "bci":  # from bci import metrics
                names = [f"bci.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("bci.")]
    return found


def scan() -> dict[str, tuple[str, list[tuple[int, str]]]]:
    """File (relative path) -> (its package, the bci packages it imports with line numbers)."""
    out = {}
    for path in sorted((REPO / "bci").rglob("*.py")):
        if path != REPO / "bci" / "__init__.py":
            out[str(path.relative_to(REPO))] = (package_of(path), imported_packages(path))
    return out


def violations(
    files: dict[str, tuple[str, list[tuple[int, str]]]], table: dict[str, int]
) -> list[str]:
    """One line per import that breaks the layer rule, or per package the table lacks."""
    out = []
    for where, (own, imports) in files.items():
        if own not in table:
            out.append(f"{where}: package {own!r} is not in the layer table of {DOC.name}")
            continue
        for line, target in imports:
            if target == own:
                continue
            if target not in table:
                out.append(f"{where}:{line}: imports bci.{target}, not in the layer table")
            elif table[target] >= table[own]:
                out.append(
                    f"{where}:{line}: {own} (layer {table[own]}) imports {target} "
                    f"(layer {table[target]})"
                )
    return out


def test_the_doc_lists_every_layer() -> None:
    table = layers()
    assert sorted(set(table.values())) == [1, 2, 3, 4, 5, 6]
    assert {"bus", "lsl", "nodes", "session", "align"} <= set(table)


def test_no_package_imports_its_own_layer_or_a_higher_one() -> None:
    assert violations(scan(), layers()) == []


def test_an_upward_a_sideways_and_an_unknown_import_are_reported() -> None:
    files = scan()
    files["bci/bus/log.py"] = ("bus", [(7, "nodes"), (8, "lsl"), (9, "bus")])
    files["bci/newpkg/x.py"] = ("newpkg", [])
    assert violations(files, layers()) == [
        "bci/bus/log.py:7: bus (layer 2) imports nodes (layer 5)",
        "bci/bus/log.py:8: bus (layer 2) imports lsl (layer 2)",
        "bci/newpkg/x.py: package 'newpkg' is not in the layer table of architecture.md",
    ]
