"""The layering invariants of ARCHITECTURE.md, checked on the source so they cannot rot silently."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "transforms": {"pipelines", "warehouse", "duckdb", "requests", "prefect", "os"},
    "warehouse": {"pipelines", "transforms", "requests", "prefect"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_never_imports_what_its_invariant_forbids(package):
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in sorted((REPO / package).rglob("*.py"))
        if imported_roots(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_transforms_never_read_the_clock():
    calls = []
    for path in sorted((REPO / "transforms").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for needle in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time(", "os.environ"):
            if needle in text:
                calls.append(f"{path.name}: {needle}")
    assert calls == []


def test_sql_files_take_values_only_as_parameters():
    for path in sorted((REPO / "sql").rglob("*.sql")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("-- one row per"), f"{path.name}: grain must be stated on the first line"
        for marker in ("{", "%s", "%(", "format("):
            assert marker not in text, f"{path.name} contains {marker!r}: values are bound as $name, never formatted"
