"""Issue 13's shape limits, checked on the product code so they cannot rot silently.

The product code is every ``.py`` and ``.sql`` file under ``pipelines/``, ``transforms/``, ``warehouse/`` and
``sql/`` (tests and benchmarks are not product code). The limits:

- no module over 400 lines;
- no function over 60 lines (``end_lineno - lineno + 1`` of its ``def``; a nested function counts on its own
  and inside its parent);
- no folder holds more than 30 % of the product lines. The top-level folders are fixed by the project layout
  (ARCHITECTURE.md: transforms, warehouse, pipelines, sql), so the limit applies per directory — a *room*:
  the files directly in one directory, not its sub-directories.

Cyclomatic complexity <= 15 is ruff's C901 (``[tool.ruff.lint.mccabe]`` in pyproject.toml), enforced by
tests/unit/test_lint.py. Each failure lists every offender with its size.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ("pipelines", "transforms", "warehouse", "sql")
PRODUCT_SUFFIXES = {".py", ".sql"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_ROOM_SHARE = 0.30


def product_files(repo: Path = REPO) -> list[Path]:
    return sorted(
        path
        for top in PRODUCT_DIRS
        for path in (repo / top).rglob("*")
        if path.suffix in PRODUCT_SUFFIXES and path.is_file() and "__pycache__" not in path.parts
    )


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[int, str, int]]:
    """(line, name, length) of every function in a Python module longer than ``limit`` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sorted(
        (node.lineno, node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > limit
    )


def room_lines(files: list[Path], repo: Path = REPO) -> Counter[str]:
    """Lines per directory, counting only the files directly in it."""
    rooms: Counter[str] = Counter()
    for f in files:
        rooms[str(f.parent.relative_to(repo))] += line_count(f)
    return rooms


def _report(title: str, offenders: list[str]) -> str:
    text = f"{title}:\n  " + "\n  ".join(offenders)
    print(text)
    return text


def test_the_product_files_are_found():
    files = product_files()
    assert {f.relative_to(REPO).parts[0] for f in files} == set(PRODUCT_DIRS)
    assert sum(f.suffix == ".sql" for f in files) > 0 and sum(f.suffix == ".py" for f in files) > 50


def test_no_module_is_over_400_lines():
    offenders = [
        f"{f.relative_to(REPO)}: {n} lines" for f in product_files() if (n := line_count(f)) > MAX_MODULE_LINES
    ]
    assert not offenders, _report(f"modules over {MAX_MODULE_LINES} lines", offenders)


def test_no_function_is_over_60_lines():
    offenders = [
        f"{f.relative_to(REPO)}:{line} {name}: {length} lines"
        for f in product_files()
        if f.suffix == ".py"
        for line, name, length in long_functions(f)
    ]
    assert not offenders, _report(f"functions over {MAX_FUNCTION_LINES} lines", offenders)


def test_no_room_holds_more_than_30_percent_of_the_product_lines():
    rooms = room_lines(product_files())
    total = sum(rooms.values())
    offenders = [
        f"{room}/: {n} of {total} lines ({n / total:.0%})"
        for room, n in rooms.most_common()
        if n > MAX_ROOM_SHARE * total
    ]
    assert not offenders, _report(f"rooms over {MAX_ROOM_SHARE:.0%} of the product lines", offenders)


def test_the_measures_find_a_long_function_and_count_lines_per_room(tmp_path):
    (tmp_path / "big").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long_module = tmp_path / "big" / "m.py"
    long_module.write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n", encoding="utf-8")
    (tmp_path / "small.py").write_text("x = 1\n", encoding="utf-8")

    assert long_functions(long_module) == [(5, "long", MAX_FUNCTION_LINES + 1)]
    assert room_lines([long_module, tmp_path / "small.py"], repo=tmp_path) == {
        "big": 4 + 1 + MAX_FUNCTION_LINES,
        ".": 1,
    }
