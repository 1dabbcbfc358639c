"""The CLI's shape (issue 13): one module per command with ``configure_parser`` + ``execute``, one place that
chooses in-process or Prefect (``pipelines/orchestration/engine.py``), and a parser that imports nothing heavy."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
# imported by a command when it runs, never to build the parser (`gexflow --help`): prefect, polars, ... and the jobs
HEAVY = ("prefect", "polars", "duckdb", "great_expectations", "numba", "matplotlib")


def _uses_of(attribute: str) -> list[str]:
    """Modules under pipelines/ whose code reads ``<something>.attribute``."""
    found = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.Attribute) and n.attr == attribute for n in ast.walk(tree)):
            found.append(path.relative_to(REPO).as_posix())
    return found


def test_only_the_engine_chooses_between_in_process_and_prefect():
    assert _uses_of("uses_prefect") == ["pipelines/orchestration/engine.py"]


def test_every_command_is_a_module_with_configure_parser_and_execute_in_help_order():
    from pipelines.cli import app

    parser = app.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert [m.__name__.rsplit(".", 1)[1] for m in app.COMMANDS] == list(sub.choices)
    for module in app.COMMANDS:
        assert callable(module.configure_parser) and callable(module.execute), module.__name__
        name = module.__name__.rsplit(".", 1)[1]
        assert sub.choices[name].get_default("func") is module.execute


def test_building_the_parser_imports_nothing_heavy():
    code = (
        "import json, sys; from pipelines.cli.app import build_parser; build_parser(); "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        "or m.startswith('pipelines.jobs'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == []
