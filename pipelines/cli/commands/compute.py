"""``gexflow compute``: (re)compute positions, GEX, profile and key levels for stored snapshots."""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.cli.options import EPILOG, common_options, settings_from, time_range


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compute", help="(re)compute positions, GEX, profile and key levels for stored snapshots", epilog=EPILOG
    )
    common_options(p, source=False, api=False)
    p.add_argument("--since", help="first snapshot time, ISO (UTC if no offset)")
    p.add_argument("--until", help="last snapshot time, ISO")
    p.add_argument("--book", type=Path, help="CSV/Parquet of instrument_name, contracts: adds the 'custom' model")
    p.add_argument("--include-blocks", action="store_true", help="count block trades and combo legs in taker_flow")
    p.add_argument("--what-ifs", action="store_true", help="also store scenario_profiles and the hedge ladder tables")
    p.set_defaults(func=execute)


def execute(args) -> int:
    settings = settings_from(args)
    from pipelines.cli.progress import counter
    from pipelines.jobs.compute import compute_cycle, load_book
    from pipelines.store.reads import stored_coins

    since, until = time_range(args)
    notes: list[str] = []
    book = load_book(args.book, notes) if args.book else None
    for note in notes:
        print(f"warning: book {args.book}: {note}", file=sys.stderr)
    result = compute_cycle(
        settings.data_dir,
        stored_coins(settings.data_dir, settings.currencies),
        since=since,
        until=until,
        book=book,
        include_blocks=args.include_blocks or settings.include_blocks,
        what_ifs=args.what_ifs or settings.what_ifs,
        progress=counter("computing"),
        kernel_threads=settings.kernel_threads,
    )
    print(
        f"computed {len(result.snapshots)} snapshot(s): " + ", ".join(f"{t} {n} rows" for t, n in result.rows.items())
    )
    if result.book_unmatched:
        n, first = len(result.book_unmatched), result.book_unmatched[0]
        print(
            f"warning: {n} of {book.height} book instrument(s) are in none of these snapshots and count for nothing "
            f"(e.g. {first})",
            file=sys.stderr,
        )
    return 0
