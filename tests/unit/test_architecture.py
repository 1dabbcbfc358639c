"""The layering invariants of ARCHITECTURE.md, checked on the source so they cannot rot silently."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "transforms": {"pipelines", "warehouse", "duckdb", "requests", "prefect", "os"},
    "warehouse": {"pipelines", "transforms", "requests", "prefect"},
}


# the one module every layer may import: the dependency-free root of expected failures
SHARED_MODULES = {"transforms.errors"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names if alias.name not in SHARED_MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module not in SHARED_MODULES:
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


# pipelines/ rooms, from the top: the CLI chooses, orchestration runs jobs in Prefect, jobs run a cycle
# (plan -> compute -> stage -> publish) using the rooms below them; those rooms never import a room above them.
ROOM_ORDER = [
    "cli",
    "orchestration",
    "jobs",
    ("publishing", "validation", "store", "sources"),
    ("config", "errors", "deferred", "interrupts"),
]


def room_rank(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "pipelines" or len(parts) < 2 or parts[1] == "__init__":
        return None
    for rank, rooms in enumerate(ROOM_ORDER):
        if parts[1] in ((rooms,) if isinstance(rooms, str) else rooms):
            return rank
    raise AssertionError(f"pipelines.{parts[1]} is in no room of ROOM_ORDER")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_pipelines_rooms_import_only_rooms_below_them():
    offenders = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        here = room_rank(".".join(path.relative_to(REPO).with_suffix("").parts))
        if here is None:
            continue
        for module in imported_modules(path):
            there = room_rank(module)
            if there is not None and there < here:
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
    assert offenders == []


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


def test_every_expected_error_has_one_root_and_the_error_root_imports_nothing():
    from pipelines.config import ConfigError
    from pipelines.errors import SourceError, expected_errors
    from pipelines.jobs.ingest import QualityError
    from pipelines.sources.deribit import DeribitError
    from transforms.errors import GexflowError
    from transforms.frames.normalise import NormaliseError
    from transforms.frames.schemas import SchemaError
    from transforms.frames.tardis import TardisFormatError
    from warehouse import WarehouseError

    layers = (ConfigError, SourceError, QualityError, DeribitError, NormaliseError, SchemaError, TardisFormatError)
    assert all(issubclass(cls, GexflowError) for cls in (*layers, WarehouseError))
    assert all(issubclass(cls, ValueError) for cls in (ConfigError, NormaliseError, SchemaError, TardisFormatError))
    assert expected_errors() == (GexflowError,)
    assert imported_roots(REPO / "transforms" / "errors.py") <= {"__future__"}


def test_lake_tables_are_named_only_through_the_registry():
    """Storage calls name a lake table by ``Table.X`` (pipelines/store/lake_tables.py), never by a string literal."""
    from pipelines.store.lake_tables import Table

    names = {table.value for table in Table}
    storage = {"lake", "atomic", "files", "raw", "manifest", "catalog", "reads"}
    offenders = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id in storage):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and arg.value in names:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {arg.value!r}")
    assert offenders == []
