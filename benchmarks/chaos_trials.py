"""The trials of the chaos suite (benchmarks/chaos.py): an interrupted or disk-full command, a corrupted
input, a damaged lake; each measured against the reference run."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import signal
from pathlib import Path

import polars as pl

from benchmarks.chaos_run import TARDIS, Reference, Workers, argv, interrupt, quiet_main
from pipelines.cli.app import main as gexflow_main
from tests.lake_state import diff, fingerprint, leftovers
from warehouse import atomic, files


def run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = gexflow_main(args)
    return rc, out.getvalue(), err.getvalue()


def _rows(path: Path) -> int:
    try:
        return pl.read_parquet(path).height
    except Exception:  # noqa: BLE001 - an unreadable file counts as one bad row
        return 1


def damage(got_dir: Path, want_dir: Path, d: dict[str, list[str]]) -> dict[str, int]:
    """Rows lost (reference files missing), duplicated (extra files), silently wrong (different contents)."""
    lake, ref = got_dir / "lake", want_dir / "lake"
    plain = [k for k in d["missing"] if not k.startswith("_state/")]
    lost = sum(_rows(ref / k) for k in plain) + len(d["missing"]) - len(plain)
    dup = sum(_rows(lake / k) for k in d["extra"] if not k.startswith("_state/"))
    wrong = sum(_rows(lake / k) for k in d["changed"] if not k.startswith("_state/"))
    wrong += sum(1 for k in d["changed"] if k.startswith("_state/"))
    return {"lost_rows": lost, "duplicates": dup + key_duplicates(got_dir), "wrong_numbers": wrong}


def key_duplicates(data_dir: Path) -> int:
    """Option rows stored twice for the same (currency, snapshot, instrument)."""
    paths = sorted((data_dir / "lake" / "option_snapshots").glob("currency=*/date=*/*.parquet"))
    if not paths:
        return 0
    keys = pl.concat([pl.read_parquet(p, columns=["currency", "snapshot_ts", "instrument_name"]) for p in paths])
    return keys.height - keys.unique().height


def partial_snapshots(fp: dict[str, str], allowed: list[dict[str, str]]) -> int:
    """Snapshots whose files differ from the nearest state a commit boundary allows (0 if one matches)."""
    if fp in allowed:
        return 0
    nearest = min((diff(fp, s) for s in allowed), key=lambda d: sum(map(len, d.values())))
    stamps = {Path(k).stem for ks in nearest.values() for k in ks if not k.startswith("_state/")}
    return max(1, len(stamps))


# a piped backfill's progress, one line per day published (pipelines/cli/progress.py): not error output
PROGRESS = re.compile(r"^backfill \d+/\d+ ")


def one_line(rc: int, err: str) -> bool:
    lines = [line for line in err.strip().splitlines() if line.strip() and not PROGRESS.match(line)]
    return rc in (0, -signal.SIGKILL) or (len(lines) == 1 and "Traceback" not in err)


# ---------------------------------------------------------------- trials


def interruption(t: dict, ref: Reference, workers: Workers, rng, work: Path, scenario) -> dict:
    """kill / sigint / disk-full of one command, recovery by the next writer, then a re-run."""
    step, d = t["step"], work / f"t{t['n']}"
    if ref.before[t["step"]].exists():
        shutil.copytree(ref.before[step], d)
    args = argv(scenario[step], d)
    fsize = rng.choice([6_000, 12_000, 20_000, 30_000, 60_000, 150_000, 300_000]) if t["kind"] == "disk-full" else None
    proc = workers.start(args, fsize)
    if t["kind"] in ("kill", "sigint"):
        t["hit"] = interrupt(proc, d, t["phase"], t["kind"], rng, ref.seconds[step] * 1.5)
    rc, err = proc.wait()
    t["rc"], t["one_line"] = rc, one_line(rc, err)
    if t["kind"] == "sigint":  # a Ctrl-C ends a command as finished or as interrupted, never as another error
        t["reported"] = rc == 0 or (rc == 130 and err.strip().splitlines()[-1:] == ["gexflow: interrupted"])
    if not (t["one_line"] and t.get("reported", True)):  # what it printed, for the report
        t["stderr_tail"] = err.strip().splitlines()[-8:]
    t["mid_commit"] = bool(list((d / atomic.JOURNAL_DIR).glob("*.json")))
    with files.writer_lock(d):  # the next writer: roll forward, sweep orphans
        pass
    fp = fingerprint(d)
    t["leftovers"] = len(leftovers(d))
    allowed = ref.states[step]
    t["state"] = allowed.index(fp) if fp in allowed else -1  # 0 = before, k = after commit k
    t["partial_snapshots"] = partial_snapshots(fp, allowed)
    rc = quiet_main(args)  # the operator re-runs the command
    t["rerun_rc"] = rc
    t.update(damage(d, ref.final, diff(fingerprint(d), ref.after(step))))
    t["leftovers"] += len(leftovers(d))
    shutil.rmtree(d, ignore_errors=True)
    return t


def corrupt_input(t: dict, ref: Reference, rng, work: Path, scenario) -> dict:
    """A damaged Tardis day file: the backfill must stop with one line naming it, the lake at a commit boundary."""
    d, src = work / f"t{t['n']}", work / f"tardis{t['n']}"
    shutil.copytree(ref.before["backfill"], d)
    days = [a for a in scenario["backfill"] if a.startswith("2026-")]
    for sub in ("options_chain", "derivative_ticker"):
        (src / sub).mkdir(parents=True)
        for f in (TARDIS / sub).iterdir():
            if days[0] <= f.name.split("_")[-2] <= days[-1]:
                shutil.copy(f, src / sub / f.name)
    victim = rng.choice(sorted((src / "options_chain").iterdir()))
    data = bytearray(victim.read_bytes())
    if t["phase"] == "truncated":
        del data[rng.randrange(len(data) // 4, len(data) - 10) :]
    else:
        at = rng.randrange(100, len(data) - 100)
        data[at : at + 8] = bytes(rng.randrange(256) for _ in range(8))
    victim.write_bytes(bytes(data))
    rc, _out, err = run_main(argv(scenario["backfill"], d, src))
    t["rc"], t["one_line"] = rc, one_line(rc, err) and (rc == 0 or victim.name in err)
    fp = fingerprint(d)
    allowed = ref.states["backfill"]
    t["state"] = allowed.index(fp) if fp in allowed else -1
    t["partial_snapshots"] = partial_snapshots(fp, allowed)
    nearest = min(allowed, key=lambda s: sum(map(len, diff(fp, s).values())))
    t.update(damage(d, ref.final, diff(fp, nearest)))
    t["leftovers"] = len(leftovers(d))
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return t


def damaged_lake(t: dict, ref: Reference, rng, work: Path) -> dict:
    """A file deleted, truncated or flipped: `gexflow check` names it; a torn warehouse.duckdb is rebuilt."""
    d = work / f"t{t['n']}"
    shutil.copytree(ref.final, d)
    t.update(lost_rows=0, duplicates=0, wrong_numbers=0, partial_snapshots=0, leftovers=0, one_line=True)
    if t["phase"] == "torn-duckdb":
        db = d / "warehouse.duckdb"
        db.write_bytes(db.read_bytes()[: rng.choice([0, 4096, 8192, 20000])])
        rc, out, _err = run_main(
            ["sql", "select count(*) from option_snapshots", "--format", "csv", "--data-dir", str(d)]
        )
        want = run_main(
            ["sql", "select count(*) from option_snapshots", "--format", "csv", "--data-dir", str(ref.final)]
        )
        t["rc"], t["detected"] = rc, rc == 0 and out == want[1]
    else:
        victim = rng.choice(sorted(p for p in (d / "lake").rglob("*.parquet") if not p.name.startswith(("_", "."))))
        data = bytearray(victim.read_bytes())
        if t["phase"] == "deleted":
            victim.unlink()
        elif t["phase"] == "truncated":
            victim.write_bytes(bytes(data[: rng.randrange(0, len(data))]))
        else:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            victim.write_bytes(bytes(data))
        rc, out, _err = run_main(["check", "--data-dir", str(d)])
        t["rc"], t["detected"] = rc, rc == 2 and str(victim) in out
    t["wrong_numbers"] = 0 if t["detected"] else 1  # undetected damage is a wrong number served
    shutil.rmtree(d, ignore_errors=True)
    return t
