"""What varies between two runs of the same code, and the normalised forms benchmarks/identical_outputs.py compares
for those outputs only: the wall clock (run records, compute stamps, manifest names), the pid of the lock holder and
the data dir's absolute path. Found empirically: two captures of one commit differ in exactly these (see
docs/operations.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

# a run id: the wall-clock start (to the ms) and 6 random hex digits, e.g. 20261207T003254225Z-d35490
RUN_ID = re.compile(r"\d{8}T\d{9}Z-[0-9a-f]{6}")
# the partition of a run record is the wall-clock day the run started
RUN_DATE = re.compile(r"(_state/(?:ingest_runs|trade_runs)/[^/]+/)date=\d{4}-\d{2}-\d{2}/")
# a manifest's name is its commit's wall-clock time in ns and 8 random hex digits
MANIFEST = re.compile(r"^_manifest/\d+-[0-9a-f]{8}\.json$")
SECONDS = re.compile(r"\b\d+\.\d+ s\b")


@dataclass(frozen=True)
class Rule:
    """Files whose relative path matches ``pattern`` are also hashed in a normalised form."""

    pattern: str
    how: str  # parquet-drop | text | lock | manifest | duckdb
    why: str
    columns: tuple[str, ...] = ()

    def matches(self, rel: str) -> bool:
        return re.search(self.pattern, rel) is not None


RULES = (
    Rule(
        r"_state/ingest_runs/.*\.parquet$",
        "parquet-drop",
        "run records: started_ts/finished_ts are the wall clock; run_id is the start time + random hex "
        "(replaced by <RUN_ID>)",
        ("started_ts", "finished_ts"),
    ),
    Rule(
        r"_state/analytics_inputs/.*\.parquet$",
        "parquet-drop",
        "computed_ts is the wall-clock time of the compute",
        ("computed_ts",),
    ),
    Rule(r"^_manifest/", "manifest", "names are commit time (ns) + random hex; they list the files above"),
    Rule(r"^\.gexflow\.lock$", "lock", "holds the pid and host of the last writer"),
    Rule(r"^warehouse\.catalog\.json$", "text", "holds the data dir's absolute path (lake_root)"),
    Rule(r"^exports/grades/index\.html$", "text", "names the data dir's absolute path"),
    Rule(r"^warehouse\.duckdb$", "duckdb", "DuckDB file bytes vary run to run; compared: its objects and SQL"),
)
NORMALISED_PATHS = (
    "file names: run ids (<stamp>-<hex>) -> <RUN_ID>; run records' date= partition (the wall-clock day) -> "
    "<RUN_DAY>; _manifest/<ns>-<hex>.json -> _manifest/<n>.json (n = commit order)"
)
NORMALISED_OUTPUT = "stdout/stderr: data dir -> <DATA_DIR>, Tardis dir -> <TARDIS>, run ids, durations N.N s -> <T> s"


def rule_for(rel: str) -> Rule | None:
    return next((rule for rule in RULES if rule.matches(rel)), None)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normal_key(rel: str) -> str:
    """The file's path with the wall-clock parts replaced (manifests are numbered later, in commit order)."""
    return RUN_ID.sub("<RUN_ID>", RUN_DATE.sub(r"\1date=<RUN_DAY>/", rel))


def normal_text(text: str, data_dir: Path) -> str:
    """A file's text with the data dir's absolute path replaced (nothing else)."""
    return text.replace(str(data_dir.resolve()), "<DATA_DIR>").replace(str(data_dir), "<DATA_DIR>")


def normal_output(text: str, data_dir: Path, tardis: Path) -> str:
    """A command's output with the data dir, the Tardis dir, run ids and durations replaced."""
    text = normal_text(text, data_dir).replace(str(tardis), "<TARDIS>")
    return SECONDS.sub("<T> s", RUN_ID.sub("<RUN_ID>", text))


def parquet_hash(path: Path, drop: tuple[str, ...]) -> str:
    """sha256 of the table (schema + rows, Arrow IPC) without ``drop``; run ids in string columns normalised."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table = table.drop_columns([c for c in drop if c in table.column_names])
    for i, name in enumerate(table.column_names):
        if pa.types.is_string(table.schema.field(i).type) or pa.types.is_large_string(table.schema.field(i).type):
            table = table.set_column(i, name, pc.replace_substring_regex(table[name], RUN_ID.pattern, "<RUN_ID>"))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sha(sink.getvalue())


def duckdb_hash(path: Path, data_dir: Path) -> str:
    """sha256 of the database's user objects: every view/table/macro name, type and SQL text."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql(
            "SELECT 'view', view_name, sql FROM duckdb_views() WHERE NOT internal "
            "UNION ALL SELECT 'table', table_name, sql FROM duckdb_tables() WHERE NOT internal "
            "UNION ALL SELECT 'macro', function_name, coalesce(macro_definition, '') FROM duckdb_functions() "
            "WHERE NOT internal AND function_type LIKE '%macro' ORDER BY 1, 2"
        ).fetchall()
    finally:
        con.close()
    return sha(normal_text(json.dumps(rows), data_dir).encode())


def manifest_hash(data: bytes, files: dict) -> str:
    """A manifest's file list with paths normalised; a listed file's [size, sha256] kept when that file has no
    normalised form, else replaced by the listed file's normalised hash (compared in its own right)."""
    body = json.loads(data)
    listed = {}
    for rel, value in body.get("files", {}).items():
        entry = files.get(rel)
        keep = entry is None or "normalised" not in entry
        listed[normal_key(rel)] = value if keep else entry["normalised"]
    body["files"] = dict(sorted(listed.items()))
    body["removed"] = sorted(normal_key(r) for r in body.get("removed", []))
    return sha(json.dumps(body, sort_keys=True).encode())


def normalised(rule: Rule, path: Path, data_dir: Path, files: dict) -> str:
    data = path.read_bytes()
    if rule.how == "parquet-drop":
        return parquet_hash(path, rule.columns)
    if rule.how == "text":
        return sha(normal_text(data.decode(), data_dir).encode())
    if rule.how == "lock":
        return sha(re.sub(rb"pid \d+ on \S+", b"pid <PID> on <HOST>", data))
    if rule.how == "duckdb":
        return duckdb_hash(path, data_dir)
    return manifest_hash(data, files)
