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


def module_imports() -> dict[str, set[str]]:
    """seglib module -> the seglib modules it imports, at the top or inside a function (a deferred import
    still makes the two modules depend on each other). `from seglib.data import io` names the module io."""
    def name(path: Path) -> str:
        parts = path.relative_to(ROOT).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files else node.module
                          for alias in node.names}
        graph[module] = (names & files.keys()) - {module}
    return graph


def test_no_two_modules_import_each_other_even_through_others():
    graph = module_imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module == goal:
                return True
            if module not in seen:
                seen.add(module)
                todo.extend(graph[module])
        return False

    circles = sorted(f"{a} -> {b} -> ... -> {a}" for a, imported in graph.items() for b in imported
                     if reaches(b, a))
    assert not circles
