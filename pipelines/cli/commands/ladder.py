"""``gexflow ladder``: a stored snapshot's threshold-rebalancing ladder (transforms/gex/hedge_ladder.py) -- the prices
at which a band-hedging dealer re-hedges up and down from spot and each order -- and the volume a band hedger
trades over the move against a continuous hedger, for the stored bands and the one asked for. Re-priced on the fly
from the stored chain and dealer positions (any band, any move); the warehouse's hedge_ladder and
hedge_ladder_volume tables hold the default bands (0.25, 0.5, 1, 2 x the gamma at spot) for +-5 %."""

from __future__ import annotations

import math
from pathlib import Path

from pipelines.cli.options import data_dir_of, data_dir_option, parse_when
from pipelines.config import ConfigError

MODELS = ("naive", "customer_long", "taker_flow", "custom")
STORED_BANDS = (0.25, 0.5, 1.0, 2.0)  # transforms.gex.hedge_ladder.BANDS_GAMMA (light: no numba at parser build)
MAX_MOVE_PCT = 50.0
RUNG_COLUMNS = ("direction", "rung", "price_level", "pct_from_spot", "order_coins", "order_usd", "cumulative_coins",
                "continuous_flow_coins")  # fmt: skip
VOLUME_COLUMNS = ("band_gamma", "band_coins", "direction", "rungs", "traded_coins", "traded_usd", "net_coins",
                  "continuous_net_coins", "continuous_traded_coins")  # fmt: skip


def configure_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "ladder",
        help="the prices at which band-hedging dealers re-hedge, each order, and the volume traded over a move",
    )
    p.add_argument("--currency", default="BTC", help="one currency (default BTC)")
    p.add_argument("--at", help="use the latest snapshot at or before this ISO time (default: the latest)")
    p.add_argument("--model", choices=MODELS, default="naive", help="dealer positioning model (default naive)")
    p.add_argument("--band", default="1", help="the re-hedging band (default 1; unit from --band-unit)")
    p.add_argument(
        "--band-unit",
        choices=["gamma", "coins"],
        default="gamma",
        help="gamma (default): a fraction of the dealer gamma at spot, |total GEX| / spot = the coins the dealer "
        "delta moves per 1 %% move; coins: the band in coins",
    )
    p.add_argument("--move", default="5", help="how far up and down from spot, %% (default 5, at most 50)")
    data_dir_option(p)
    p.set_defaults(func=execute)


def _positive(text: str, flag: str, most: float = math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.0 < value <= most):
        limit = f" up to {most:g}" if math.isfinite(most) else ""
        raise ConfigError(f"{flag} must be a positive number{limit}, got {text!r}")
    return value


def _book(data_dir: Path, currency: str, model: str, at):
    """(snapshot_ts, chain, positions) of the latest computed snapshot at or before ``at`` for ``model``."""
    from pipelines.store.lake_tables import Table
    from pipelines.store.reads import dealer_positions_at, latest_at, load_chain

    levels = latest_at(data_dir, Table.KEY_LEVELS, currency, at, model)
    if levels.is_empty():
        when = f" at or before {at:%Y-%m-%dT%H:%M:%SZ}" if at else ""
        raise ConfigError(f"no key levels for {currency} model {model}{when}: run `gexflow compute` first")
    ts = levels["snapshot_ts"][0]
    chain = load_chain(data_dir, [currency], ts, ts)
    positions = dealer_positions_at(data_dir, currency, ts, model)
    return ts, chain, positions


def execute(args) -> int:
    """Print the rungs for the band asked for and the volume table over the move for every stored band and it."""
    band = _positive(args.band, "--band")
    move = _positive(args.move, "--move", MAX_MOVE_PCT)
    at = parse_when(args.at, "--at")
    currency = args.currency.strip().upper()
    data_dir = data_dir_of(args)
    ts, chain, positions = _book(data_dir, currency, args.model, at)

    from pipelines.publishing.tables import render_frame
    from transforms.gex.exposure import _exposures
    from transforms.gex.hedge_ladder import ladder_tables

    greeks, x = _exposures(chain, positions)
    coins = band if args.band_unit == "coins" else None
    asked = ladder_tables(
        greeks, x, bands_gamma=() if coins else (band,), band_coins=coins, move_pct=move, moves_pct=(move,)
    )
    bands = tuple(sorted({*STORED_BANDS, *(() if coins else (band,))}))
    volume = ladder_tables(greeks, x, bands_gamma=bands, move_pct=move, moves_pct=(move,))["hedge_ladder_volume"]
    if coins:
        volume = volume.vstack(asked["hedge_ladder_volume"])
    if volume.is_empty():
        raise ConfigError(f"{currency} {args.model} at {ts:%Y-%m-%d %H:%M:%SZ}: the dealer gamma at spot is 0, no band")
    rungs = asked["hedge_ladder"]
    band_coins = asked["hedge_ladder_volume"]["band_coins"][0] if asked["hedge_ladder_volume"].height else band
    head = f"{currency} {args.model} at {ts:%Y-%m-%d %H:%M:%SZ}: band {band:g} {args.band_unit} = {band_coins:,.4f}"
    print(f"{head} coins; rungs within +-{move:g} % (order_coins > 0 = dealers buy; one band each)")
    print(render_frame(rungs.select(RUNG_COLUMNS), "table") if rungs.height else "no rung within the move")
    print(f"\nvolume over a {move:g} % move up and down, by band (band_gamma empty = given in coins):")
    print(render_frame(volume.select(VOLUME_COLUMNS), "table"))
    return 0


__all__ = ["configure_parser", "execute"]
