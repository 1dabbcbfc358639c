"""``gexflow profile --scenario NAME``: one stored snapshot's dealer book under a what-if scenario
(transforms/gex/scenarios.py), re-priced on the fly on the profile grid (+-25 % in 0.25 % steps) from the stored chain
and dealer positions; the warehouse's scenario_profiles table holds the same scenarios on a 1 % grid."""

from __future__ import annotations

from pathlib import Path

from pipelines.errors import GexflowError

# light on purpose: the CLI parser imports SCENARIO_NAMES at start-up, so polars and numba load inside functions

# transforms.gex.scenarios.SCENARIOS, spelled out so the CLI parser needs no numba import (tests check they agree)
SCENARIO_NAMES = (
    "rolloff_next",
    "rolloff_monthly",
    "iv_minus_10",
    "iv_minus_5",
    "iv_plus_5",
    "iv_plus_10",
    "spot_vol",
    "time_24h",
)
COLUMNS = (
    "price_level",
    "pct_from_spot",
    "dealer_gex_usd",
    "hedge_flow_coins",
    "gamma_flow_coins",
    "vanna_flow_coins",
    "charm_flow_coins",
)


def scenario_frame(data_dir: Path, currency: str, model: str, snapshot_ts, scenario: str):
    """The scenario's rows (SCENARIO_PROFILE) for the stored snapshot and model, on the 0.25 % profile grid."""
    import polars as pl

    from pipelines.store.lake_tables import Table
    from pipelines.store.reads import load_chain
    from transforms.frames.schemas import DEALER_POSITION
    from transforms.gex.scenarios import scenario_profiles
    from warehouse import lake

    chain = load_chain(data_dir, [currency], snapshot_ts, snapshot_ts)
    positions = (
        lake.scan(data_dir, Table.DEALER_POSITIONS)
        .filter(pl.col("currency") == currency, pl.col("snapshot_ts") == snapshot_ts, pl.col("model") == model)
        .select(list(DEALER_POSITION))
        .collect()
    )
    rows = scenario_profiles(chain, positions, scenarios=[scenario], step=0.0025)
    if rows.is_empty():
        raise GexflowError(
            f"scenario {scenario} does not apply to {currency} {model} at {snapshot_ts:%Y-%m-%d %H:%M:%SZ} "
            "(no such expiry in the chain)"
        )
    return rows.sort("price_level")


def show(args, base, data_dir: Path) -> int:
    """Print (and with --plot draw) the scenario for the snapshot of ``base`` (the stored gex_profile rows)."""
    import polars as pl

    from pipelines.publishing.tables import render_frame

    currency = args.currency.upper()
    rows = scenario_frame(data_dir, currency, args.model, base["snapshot_ts"][0], args.scenario)
    if args.plot:
        from pipelines.publishing.depth_charts import scenario_chart

        scenario_chart(rows, base, args.plot)
    shown = rows
    if args.format == "table":
        mid = rows.height // 2
        shown = rows[[i for i in range(rows.height) if (i - mid) % args.every == 0]].select(COLUMNS)
        head = rows.row(0, named=True)
        zero = "none within +-25 %" if head["zero_gamma"] is None else f"{head['zero_gamma']:,.2f}"
        print(
            f"{currency} {args.model} at {head['snapshot_ts']:%Y-%m-%d %H:%M:%SZ}, scenario {args.scenario} (re-priced "
            f"at {head['horizon_ts']:%Y-%m-%d %H:%M:%SZ}); zero gamma after: {zero}\n"
            "flows in coins from spot now, > 0 = dealers buy; total = gamma + vanna + charm"
        )
    print(render_frame(shown.with_columns(pl.col("pct_from_spot").round(2)), args.format))
    if args.plot:
        print(f"chart written to {args.plot}")
    return 0


__all__ = ["COLUMNS", "SCENARIO_NAMES", "scenario_frame", "show"]
