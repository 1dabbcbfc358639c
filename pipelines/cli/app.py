"""``gexflow`` command line: the parser built from the command modules (:mod:`pipelines.cli.commands`, one per
command), dispatch, and every failure turned into one line and an exit code. Heavy imports happen inside the
commands' ``execute`` so ``--help`` and errors are instant."""

from __future__ import annotations

import argparse
import gc
import sys

from pipelines.cli.commands import (
    backfill,
    check,
    compute,
    forecast,
    grade,
    history,
    ingest,
    ladder,
    levels,
    profile,
    run,
    serve,
    sql,
    status,
    trades,
)
from pipelines.cli.options import EPILOG
from pipelines.config import load_settings
from pipelines.deferred import NUMBA_UNUSED, defer
from pipelines.interrupts import ctrl_c_raised, handle_ctrl_c

# in the order `gexflow --help` lists them
COMMANDS = (
    ingest,
    run,
    trades,
    compute,
    levels,
    profile,
    history,
    ladder,
    backfill,
    forecast,
    serve,
    grade,
    sql,
    status,
    check,
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its default prints the whole usage block first)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


class _Version(argparse.Action):
    """--version, looked up only when asked for (the package metadata read is not free at every start)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"gexflow {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gexflow",
        description="Dealer gamma exposure and hedging-flow analytics for Deribit options.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.configure_parser(sub)
    return parser


# ---------------------------------------------------------------- entry point


def entry() -> int:
    """The process's entry point (the ``gexflow`` script, ``python -m pipelines.cli``): :func:`main`, then every live
    object frozen (``gc.freeze``), which spares the interpreter's collections at exit walking the hundreds of
    thousands of objects numba, polars and DuckDB left (benchmarks/RESULTS.md, "First run"). Before it, the scipy
    modules numba's import executes and never uses are deferred (:mod:`pipelines.deferred`). Not in :func:`main`,
    which tests call in-process."""
    defer(NUMBA_UNUSED)
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    handle_ctrl_c()  # one KeyboardInterrupt per Ctrl-C, never inside native code (pipelines/interrupts.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("gexflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gexflow ... | head`: the reader left; stop quietly, as other command-line tools do
        return _reader_gone()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one line, never a traceback
        if _interrupted(exc) or ctrl_c_raised():  # a Ctrl-C a library wrapped (numba, pyo3) or replaced (DuckDB)
            print("gexflow: interrupted", file=sys.stderr)
            return 130
        return _fail(exc, getattr(args, "data_dir", None))


def _interrupted(exc: BaseException | None, depth: int = 0) -> bool:
    """Whether ``exc`` is, wraps or groups a KeyboardInterrupt (SystemError from a numba kernel, pyo3's
    PanicException, an exception group of worker threads)."""
    if exc is None or depth > 10:
        return False
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup) and any(_interrupted(e, depth + 1) for e in exc.exceptions):
        return True
    return _interrupted(exc.__cause__ or exc.__context__, depth + 1)


def _reader_gone() -> int:
    """stdout's reader closed the pipe: point stdout at /dev/null so the interpreter's final flush cannot
    fail again, and exit like a process ended by SIGPIPE (128 + 13), without a message."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("gexflow")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _is_unreadable_parquet(exc: BaseException) -> bool:
    import duckdb
    import polars as pl

    readers = (pl.exceptions.ComputeError, duckdb.InvalidInputException, duckdb.IOException)
    return isinstance(exc, readers) and "parquet" in str(exc).lower()


def _unreadable_files(data_dir) -> str:
    """ "; unreadable: <paths>" naming the damaged lake files, or "" when none is found."""
    try:
        from warehouse.manifest import unreadable

        bad = unreadable(load_settings({"data_dir": data_dir}).data_dir)
    except Exception:  # noqa: BLE001 - naming the file is a courtesy; the error itself is reported anyway
        return ""
    return f"; unreadable: {', '.join(bad)} (see gexflow check)" if bad else ""


def _fail(exc: BaseException, data_dir=None) -> int:
    from pipelines.config import debug_enabled

    if debug_enabled():
        import traceback

        traceback.print_exc()
    message = " ".join(str(exc).split()) or type(exc).__name__
    from pipelines.errors import expected_errors

    if isinstance(exc, expected_errors()):
        print(f"gexflow: error: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    if isinstance(exc, OSError):
        print(
            f"gexflow: error: {exc.strerror or message}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr
        )
        return 2
    if _is_unreadable_parquet(exc):  # a damaged lake file is a storage problem, not a bug
        where = _unreadable_files(data_dir)
        print(
            f"gexflow: error: a Parquet file under the data dir is unreadable{where}: {message[:300]}",
            file=sys.stderr,
        )
        return 2
    print(
        f"gexflow: internal error: {type(exc).__name__}: {message} (GEXFLOW_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return 1
