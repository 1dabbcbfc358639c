"""Byte-identical outputs before and after a refactor (issue 13): capture what the CLI writes, compare two captures.

Run from the root of the tree under test (or pass ``--root TREE``)::

    python -m benchmarks.identical_outputs capture OUT.json --data-dir DIR [--root TREE] [--tardis DIR]
    python -m benchmarks.identical_outputs compare A.json B.json

``capture`` drives the product only through ``python -m pipelines.cli`` in subprocesses (it imports nothing
from pipelines/, transforms/ or warehouse/), so the same script runs on the code before and after a move.
Scenarios, each in its own data dir under ``DIR`` (emptied first) so one scenario's snapshots never mix with
the other's (the sample's 2026-07-31 snapshot falls inside the backfilled days):

  sample/    run --source sample; forecast --date 2026-07-31; grade; levels; history; check
  backfill/  backfill --tardis (BTC+ETH, 2026-07-29..31, hourly grid); compute; forecast --date 2026-07-31;
             grade --tardis; levels; history; check

The manifest holds the exit code, stdout and stderr of each command and the sha256 of every file under the
data dirs and of every golden file under tests/ (``golden*`` files and files under ``golden*/`` folders).
There is no setting that freezes the clock (pipelines/config.py has none), so the few outputs that carry the
wall clock, the process id or the data dir's absolute path are also stored in a normalised form; ``compare``
falls back to it only for those (``RULES`` in benchmarks/identical_rules.py names each one and why).
Everything else is compared byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.identical_rules import (
    MANIFEST,
    NORMALISED_OUTPUT,
    NORMALISED_PATHS,
    RULES,
    normal_key,
    normal_output,
    normalised,
    rule_for,
    sha,
)

DAYS = ("2026-07-29", "2026-07-31")
FORECAST_DATE = "2026-07-31"
READ_ONLY = (["levels"], ["history"], ["check"])


def scenarios(tardis: Path) -> list[tuple[str, str, list[str]]]:
    """(data subdir, step name, CLI arguments without --data-dir), in the order they run."""
    sample = [
        ("run", ["run", "--source", "sample"]),
        ("forecast", ["forecast", "--date", FORECAST_DATE]),
        ("grade", ["grade"]),
    ]
    backfill = [
        ("backfill", ["backfill", "--tardis", str(tardis), "--since", DAYS[0], "--until", DAYS[1]]),
        ("compute", ["compute"]),
        ("forecast", ["forecast", "--date", FORECAST_DATE]),
        ("grade", ["grade", "--tardis", str(tardis)]),
    ]
    reads = [(args[0], args) for args in READ_ONLY]
    return [("sample", name, args) for name, args in sample + reads] + [
        ("backfill", name, args) for name, args in backfill + reads
    ]


# --- capture -----------------------------------------------------------------------------------------------


def hash_tree(data_dir: Path, prefix: str) -> dict:
    """rel path -> {key, sha256, size[, normalised, rule]} for every file under ``data_dir``."""
    files: dict = {}
    paths = sorted(p for p in data_dir.rglob("*") if p.is_file())
    # manifests last: their normalised form uses the normalised hashes of the files they list
    paths.sort(key=lambda p: p.relative_to(data_dir).as_posix().startswith("_manifest/"))
    manifests = sorted(p.name for p in paths if MANIFEST.match(p.relative_to(data_dir).as_posix()))
    for path in paths:
        rel = path.relative_to(data_dir).as_posix()
        data = path.read_bytes()
        key = normal_key(rel)
        if MANIFEST.match(rel):
            key = f"_manifest/{manifests.index(path.name)}.json"
        entry = {"path": f"{prefix}/{rel}", "sha256": sha(data), "size": len(data)}
        rule = rule_for(rel)
        if rule is not None:
            entry["normalised"] = normalised(rule, path, data_dir, files)
            entry["rule"] = rule.pattern
        files[rel] = entry | {"key": f"{prefix}/{key}"}
    keyed: dict = {}
    for entry in files.values():  # two names that normalise alike are both kept, numbered in name order
        key = base = entry.pop("key")
        while key in keyed:
            key = f"{base}#{len([k for k in keyed if k.startswith(base)])}"
        keyed[key] = entry
    return keyed


def goldens(root: Path) -> dict:
    """'golden/<name>' (the path from the golden folder down, so a move of tests/ keeps the key) -> hash."""
    found = {}
    for path in sorted((root / "tests").rglob("*")):
        parts = path.relative_to(root / "tests").parts
        at = next((i for i, part in enumerate(parts) if part.startswith("golden")), None)
        if path.is_file() and at is not None and "__pycache__" not in parts:
            data = path.read_bytes()
            found["/".join(parts[at:])] = {"path": path.relative_to(root).as_posix(), "sha256": sha(data)}
    return found


def cli_env(root: Path, settings: dict | None = None) -> dict:
    """The caller's environment without GEXFLOW_*/PREFECT_API_URL (defaults apply), in-process engine, UTC, and
    the ``settings`` asked for (GEXFLOW_* variables, e.g. GEXFLOW_WHAT_IFS=true)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXFLOW_") and k != "PREFECT_API_URL"}
    env |= {"GEXFLOW_ENGINE": "direct", "TZ": "UTC", "PYTHONPATH": str(root)} | (settings or {})
    return env


def run_step(root: Path, data_dir: Path, tardis: Path, args: list[str], settings: dict | None = None) -> dict:
    cmd = [sys.executable, "-m", "pipelines.cli", *args, "--data-dir", str(data_dir)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=cli_env(root, settings), capture_output=True, text=True)
    seconds = round(time.perf_counter() - t0, 2)
    if proc.returncode != 0:
        print(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}", file=sys.stderr)
    return {
        "args": [normal_output(a, data_dir, tardis) for a in args],
        "exit": proc.returncode,
        "stdout": normal_output(proc.stdout, data_dir, tardis),
        "stderr": normal_output(proc.stderr, data_dir, tardis),
        "stdout_sha256": sha(proc.stdout.encode()),
        "stderr_sha256": sha(proc.stderr.encode()),
        "seconds": seconds,
    }


def capture(out: Path, work: Path, tardis: Path, root: Path, settings: dict | None = None) -> int:
    if work.exists() and {p.name for p in work.iterdir()} - {"sample", "backfill"}:
        print(f"--data-dir {work} holds other files; give an empty or a previous capture's dir", file=sys.stderr)
        return 2
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    commands: dict = {}
    t0 = time.perf_counter()
    for sub, name, args in scenarios(tardis):
        key = f"{sub}/{len([k for k in commands if k.startswith(sub + '/')]):02d}-{name}"
        commands[key] = step = run_step(root, work / sub, tardis, args, settings)
        print(f"{key:<24} exit {step['exit']}  {step['seconds']:6.1f} s", flush=True)
    files: dict = {}
    for sub in ("sample", "backfill"):
        files |= hash_tree(work / sub, sub)
    manifest = {
        "root": str(root),
        "commit": git_head(root),
        "settings": settings or {},
        "seconds": round(time.perf_counter() - t0, 1),
        "commands": commands,
        "files": files,
        "goldens": goldens(root),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(
        f"{len(files)} files, {len(manifest['goldens'])} goldens, {len(commands)} commands -> {out} "
        f"({manifest['seconds']} s)"
    )
    return 1 if any(step["exit"] != 0 for step in commands.values()) else 0


def git_head(root: Path) -> str:
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True)
    if proc.returncode != 0:
        return "(not a git tree)"
    return proc.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# --- compare -----------------------------------------------------------------------------------------------

KINDS = ("equal", "equal after normalisation", "differ", "missing", "extra")


def verdict(a: dict | None, b: dict | None) -> str:
    if b is None:
        return "missing"
    if a is None:
        return "extra"
    if a["sha256"] == b["sha256"]:
        return "equal" if a.get("path") == b.get("path") else "equal after normalisation"
    if a.get("normalised") is not None and a.get("normalised") == b.get("normalised"):
        return "equal after normalisation"
    return "differ"


def command_entries(commands: dict) -> dict:
    """Each command's stdout and stderr as entries: raw hash, and the normalised text's hash."""
    out = {}
    for key, step in commands.items():
        for stream in ("stdout", "stderr"):
            text = f"exit {step['exit']}\n{step[stream]}"
            out[f"{key} {stream}"] = {
                "sha256": f"{step['exit']}:{step[stream + '_sha256']}",
                "normalised": sha(text.encode()),
                "text": step[stream],
            }
    return out


def compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    print(f"A: {a_path} (commit {a['commit']})\nB: {b_path} (commit {b['commit']})\n")
    sections = {
        "files": (a["files"], b["files"]),
        "goldens": (a["goldens"], b["goldens"]),
        "commands": (command_entries(a["commands"]), command_entries(b["commands"])),
    }
    counts = {name: dict.fromkeys(KINDS, 0) for name in sections}
    problems, used = [], {}
    for name, (left, right) in sections.items():
        for key in sorted(set(left) | set(right)):
            kind = verdict(left.get(key), right.get(key))
            counts[name][kind] += 1
            if kind == "equal after normalisation":
                rule = left[key].get("rule", "path" if section_is_files(name) else "output")
                used[rule] = used.get(rule, 0) + 1
            elif kind != "equal":
                problems.append((name, key, kind, left.get(key), right.get(key)))
    print_table(counts)
    print_normalisations(used)
    for problem in problems:
        print_problem(*problem)
    print(f"\n{'IDENTICAL' if not problems else f'{len(problems)} DIFFERENCE(S)'}")
    return 1 if problems else 0


def print_table(counts: dict) -> None:
    print(f"{'':<10}" + "".join(f"{kind:>27}" for kind in KINDS))
    for name, row in counts.items():
        print(f"{name:<10}" + "".join(f"{row[kind]:>27}" for kind in KINDS))


def section_is_files(name: str) -> bool:
    return name in ("files", "goldens")


def print_normalisations(used: dict) -> None:
    """What was compared in a normalised form (count of entries, rule, why); everything else byte-for-byte."""
    if not used:
        return
    print("\nequal after normalisation (wall clock, pid, data dir path; everything else byte-for-byte):")
    print(f"  all files: {NORMALISED_PATHS}")
    for rule in RULES:
        if rule.pattern in used:
            dropped = f" (dropped: {', '.join(rule.columns)})" if rule.columns else ""
            print(f"  {used[rule.pattern]:>3} x {rule.pattern}: {rule.why}{dropped}")
    if "path" in used:
        print(f"  {used['path']:>3} x identical bytes under a normalised name")
    if "output" in used:
        print(f"  {used['output']:>3} x {NORMALISED_OUTPUT}")


def print_problem(section: str, key: str, kind: str, left: dict | None, right: dict | None) -> None:
    print(f"\n{kind.upper()}: {section} {key}")
    if section == "commands" and left and right:
        import difflib

        diff = difflib.unified_diff(left["text"].splitlines(), right["text"].splitlines(), "A", "B", lineterm="")
        print("\n".join(list(diff)[:40]))
    elif left and right:
        print(f"  A {left.get('path', key)} {left['sha256'][:16]}  B {right.get('path', key)} {right['sha256'][:16]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identical_outputs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="run the scenarios on the tree in the current directory; write OUT.json")
    cap.add_argument("out", type=Path)
    cap.add_argument("--data-dir", type=Path, required=True, help="work dir (emptied first)")
    cap.add_argument("--root", type=Path, default=Path.cwd(), help="the tree under test (default: this directory)")
    cap.add_argument("--tardis", type=Path, help="Tardis CSV folder (default ROOT/../shared/data/tardis)")
    cap.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="GEXFLOW_NAME=VALUE",
        help="a setting every command runs with (repeatable), e.g. GEXFLOW_WHAT_IFS=true",
    )
    cmp_ = sub.add_parser("compare", help="compare two captures; exit 1 on any difference")
    cmp_.add_argument("a", type=Path)
    cmp_.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "compare":
        return compare(args.a, args.b)
    root = args.root.resolve()
    tardis = (args.tardis or root / "../shared/data/tardis").resolve()
    if not (root / "pipelines").is_dir() or not tardis.is_dir():
        parser.error(f"--root {root} needs a pipelines/ folder and --tardis {tardis} must be a directory")
    if any("=" not in s or not s.startswith("GEXFLOW_") for s in args.setting):
        parser.error("--setting takes GEXFLOW_NAME=VALUE")
    settings = dict(s.split("=", 1) for s in args.setting)
    return capture(args.out, args.data_dir.resolve(), tardis, root, settings)


if __name__ == "__main__":
    sys.exit(main())
