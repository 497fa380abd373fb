"""docs/architecture.md tells the truth: each subpackage imports exactly the packages its row lists,
and only packages below it in the table (imports point one way, no cycles)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seglib"


def imported_packages(package: str) -> set[str]:
    """The other top-level parts of seglib (subpackages and modules) that `package` imports anywhere."""
    parts = {p.stem for p in PACKAGE.iterdir() if not p.name.startswith("_")}
    found = set()
    files = [PACKAGE / f"{package}.py"] if (PACKAGE / f"{package}.py").is_file() else (PACKAGE / package).rglob("*.py")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else []) + \
                    ([alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            found |= {name.split(".")[1] for name in names if name.startswith("seglib.")}
    return (found & parts) - {package}


def documented_table() -> list[tuple[str, set[str]]]:
    """(package, the seglib packages its 'imports' column names), top row first."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|$", text, re.M)
    known = {name for name, _ in rows} | {"keras_objects", "progress"}
    return [(name, {word for word in re.findall(r"\b(\w+)\b", re.sub(r"\([^)]*\)", "", imports)) if word in known})
            for name, imports in rows]


def test_every_subpackage_has_a_row_listing_exactly_what_it_imports():
    table = documented_table()
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {name for name, _ in table} == subpackages | {"config"}
    wrong = {name: {"documented": sorted(listed), "imported": sorted(imported_packages(name))}
             for name, listed in table if name != "cli" and listed != imported_packages(name)}
    assert not wrong


def test_imports_point_down_the_table():
    order = [name for name, _ in documented_table()]
    upward = {name: sorted(p for p in imported_packages(name) if p in order and order.index(p) < order.index(name))
              for name in order}
    assert not {name: above for name, above in upward.items() if above}
