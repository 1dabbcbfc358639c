"""The ``taker_flow`` dealer-positioning model and tape-vs-open-interest reconciliation (DESIGN 4.2).

Pure polars. Makers are taken to be dealers, so a dealer's position in an instrument is the mirror of
the cumulative signed taker volume: a taker buy (``direction`` = 'buy') means dealers sold.

Inputs are an OPTION_SNAPSHOT frame ``chain`` (one or many snapshots) and a TRADE frame ``trades``.
Sizes: trade ``amount`` and ``open_interest`` are both in Deribit's option amount unit (contracts =
coins of the underlying for BTC/ETH), so they are compared directly. Trades are matched to the chain
by ``instrument_name`` alone (names are unique across Deribit; a USDC tape's ``currency`` is 'USDC'
while its chain rows carry the base coin).

No look-ahead: a snapshot only sees trades with ``ts <= snapshot_ts``. Everything is computed as
running totals per instrument over snapshot buckets of the tape and an as-of join to the snapshots
(see :func:`_as_of_tape`); no row loops.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms.frames.schemas import DEALER_POSITION, OI_RECONCILIATION, TAPE_COVERAGE, UTC_TS, check

MODEL = "taker_flow"
VIOLATION_TOLERANCE = 1e-9

# Extra columns of taker_flow_positions, after the DEALER_POSITION contract columns. Counts and sums
# run over the instrument's tape up to snapshot_ts.
TAKER_FLOW_EXTRA = {
    "trades_used": pl.Int64,  # trades in the estimate (block/combo legs only with include_blocks)
    "block_trades_excluded": pl.Int64,  # block trades and combo legs left out (0 with include_blocks)
    "liquidations": pl.Int64,  # liquidation trades among trades_used
    "net_taker_contracts": pl.Float64,  # sum of signed taker amount of trades_used (buy +, sell -)
    "gross_taker_contracts": pl.Float64,  # sum of amount of trades_used
    "block_net_taker_contracts": pl.Float64,  # the block/combo bucket's own signed sum (always reported)
    "is_capped": pl.Boolean,  # tape_full and |net| exceeded open interest
}

_TRADE_COLUMNS = (
    "instrument_name",
    "ts",
    "direction",
    "amount",
    "block_trade_id",
    "combo_id",
    "combo_trade_id",
    "liquidation",
)
_CHAIN_COLUMNS = ("currency", "snapshot_ts", "instrument_name", "option_type", "open_interest")
_RUNNING = ("net", "gross", "used", "excluded", "liquidations", "block_net", "traded", "taker_traded", "trades")


def _check_inputs(chain: pl.DataFrame, trades: pl.DataFrame) -> None:
    for frame, cols, name in ((chain, _CHAIN_COLUMNS, "chain"), (trades, _TRADE_COLUMNS, "trades")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"taker_flow: {name} lacks {', '.join(missing)}")


def _as_of_tape(chain: pl.DataFrame, trades: pl.DataFrame, columns, *, include_blocks: bool) -> pl.LazyFrame:
    """``chain[columns]`` with each instrument's running tape totals as of its snapshot_ts.

    Totals (zeros before an instrument's first trade): ``net``/``gross``/``used``/``liquidations``
    over the trades the model counts, ``excluded``/``block_net`` over the block/combo bucket,
    ``traded``/``trades`` over every trade, ``taker_traded`` over trades with a reliable aggressor.

    Vectorised without a per-trade group key: each trade goes to the first snapshot time at or after
    it (a binary search over the chain's distinct snapshot times), the tape is summed per
    (instrument, snapshot bucket), running sums run over the buckets, and each chain row takes its
    instrument's latest bucket at or before its own (an as-of join). A trade at exactly snapshot_ts
    counts for that snapshot; a later trade never does.
    """
    times = chain["snapshot_ts"].cast(UTC_TS).unique().sort()
    tape = trades.select(_TRADE_COLUMNS).with_columns(pl.col("ts").cast(UTC_TS)).filter(pl.col("ts") <= times.max())
    in_bucket = pl.any_horizontal(pl.col("block_trade_id", "combo_id", "combo_trade_id").is_not_null())
    counted = pl.lit(True) if include_blocks else ~in_bucket
    sign = pl.when(pl.col("direction") == "buy").then(1.0).when(pl.col("direction") == "sell").then(-1.0).otherwise(0.0)
    signed = sign * pl.col("amount")
    running = (
        tape.lazy()
        .with_columns(
            pl.Series("_bucket", times.search_sorted(tape["ts"], side="left")),
            in_bucket.alias("_bucket_trade"),
            counted.alias("_counted"),
        )
        .group_by("instrument_name", "_bucket")
        .agg(
            pl.when(pl.col("_counted")).then(signed).otherwise(0.0).sum().alias("net"),
            pl.when(pl.col("_counted")).then(pl.col("amount")).otherwise(0.0).sum().alias("gross"),
            pl.col("_counted").sum().cast(pl.Int64).alias("used"),
            (pl.col("_bucket_trade") & ~pl.col("_counted")).sum().cast(pl.Int64).alias("excluded"),
            (pl.col("_counted") & pl.col("liquidation").is_not_null()).sum().cast(pl.Int64).alias("liquidations"),
            pl.when(pl.col("_bucket_trade")).then(signed).otherwise(0.0).sum().alias("block_net"),
            pl.col("amount").sum().alias("traded"),
            pl.when(pl.col("_bucket_trade")).then(0.0).otherwise(pl.col("amount")).sum().alias("taker_traded"),
            pl.len().cast(pl.Int64).alias("trades"),
        )
        .sort("_bucket")
        .with_columns(pl.col(list(_RUNNING)).cum_sum().over("instrument_name"))
    )
    rows = (
        chain.lazy()
        .select(columns)
        .with_columns(pl.Series("_bucket", times.search_sorted(chain["snapshot_ts"].cast(UTC_TS), side="left")))
    )
    return (
        rows.sort("_bucket")
        .join_asof(
            running, on="_bucket", by="instrument_name", strategy="backward", check_sortedness=False
        )  # both sides sorted on _bucket; polars cannot verify it per group
        .with_columns(pl.col(list(_RUNNING)).fill_null(0))
        .drop("_bucket")
    )


def _chain_columns(chain: pl.DataFrame, extra: tuple[str, ...] = ()) -> list[str]:
    return [*_CHAIN_COLUMNS, *(c for c in extra if c in chain.columns)]


def taker_flow_positions(
    chain: pl.DataFrame,
    trades: pl.DataFrame,
    *,
    tape_start: datetime | None = None,
    include_blocks: bool = False,
) -> pl.DataFrame:
    """Dealer positions per (currency, snapshot_ts, instrument_name) from the trade tape (model 'taker_flow').

    Per instrument and snapshot, over the trades with ``ts <= snapshot_ts`` (``net`` = sum of taker
    amount signed buy +1 / sell -1, ``gross`` = sum of amount, ``OI`` = the snapshot's open_interest):

    - ``tape_full`` when the tape is complete since listing (``tape_start`` given, and
      ``tape_start <= listed_ts``; the chain must carry ``listed_ts`` - join it from the instruments
      table - else the listing time is unknown and the tape counts as partial; a ``tape_start_ts`` column
      in the chain, when there, gives each option its own tape start instead of ``tape_start``):
      dealer = clip(-net, -OI, +OI);
    - ``tape_partial`` otherwise: dealer = -OI * net / gross (the window's imbalance scaled to OI);
    - ``naive_fallback`` (``is_fallback``) when the instrument has no counted trade up to the
      snapshot: +OI for calls, -OI for puts.

    Block trades and combo legs (``block_trade_id``, ``combo_id`` or ``combo_trade_id`` set) have no
    reliable aggressor: they form their own bucket (``block_net_taker_contracts``) and are left out
    unless ``include_blocks``. Liquidations are counted (``liquidations``), not excluded.

    Returns the DEALER_POSITION columns followed by :data:`TAKER_FLOW_EXTRA`, sorted by
    (currency, snapshot_ts, instrument_name).
    """
    _check_inputs(chain, trades)
    if chain.is_empty():
        return pl.DataFrame(schema={**DEALER_POSITION, **TAKER_FLOW_EXTRA})
    listed = pl.col("listed_ts") if "listed_ts" in chain.columns else pl.lit(None, UTC_TS)
    start = pl.col("tape_start_ts") if "tape_start_ts" in chain.columns else pl.lit(tape_start, UTC_TS)
    fallback = pl.col("used") == 0
    full = (start <= listed).fill_null(False)
    out = (
        _as_of_tape(chain, trades, _chain_columns(chain, ("listed_ts", "tape_start_ts")), include_blocks=include_blocks)
        .with_columns(fallback.alias("is_fallback"), full.alias("_full"))
        .with_columns(_dealer_columns())
        .select(_output_columns())
        .sort("currency", "snapshot_ts", "instrument_name")
        .collect()
    )
    out = out.select(
        *(pl.col(c).cast(t) for c, t in DEALER_POSITION.items() if c in out.columns),
        *(pl.col(c).cast(t) for c, t in TAKER_FLOW_EXTRA.items()),
    )
    check(out, DEALER_POSITION, "taker_flow_positions")
    return out


def _dealer_columns() -> list[pl.Expr]:
    """dealer_contracts, method, is_capped and model from the running tape totals, is_fallback and _full
    (the three rules of :func:`taker_flow_positions`)."""
    oi, net, gross = pl.col("open_interest"), pl.col("net"), pl.col("gross")
    return [
        pl.when(pl.col("is_fallback"))
        .then(pl.when(pl.col("option_type") == "call").then(oi).otherwise(-oi))
        .when(pl.col("_full"))
        .then((-net).clip(-oi, oi))
        .when(gross > 0)
        .then(-oi * net / gross)
        .otherwise(0.0)
        .alias("dealer_contracts"),
        pl.when(pl.col("is_fallback"))
        .then(pl.lit("naive_fallback"))
        .when(pl.col("_full"))
        .then(pl.lit("tape_full"))
        .otherwise(pl.lit("tape_partial"))
        .alias("method"),
        (pl.col("_full") & ~pl.col("is_fallback") & (net.abs() > oi)).alias("is_capped"),
        pl.lit(MODEL).alias("model"),
    ]


def _output_columns() -> list[pl.Expr]:
    """The DEALER_POSITION columns, then the TAKER_FLOW_EXTRA ones under their names."""
    return [
        pl.col("currency"),
        pl.col("snapshot_ts"),
        pl.col("model"),
        pl.col("instrument_name"),
        pl.col("dealer_contracts").cast(pl.Float64),
        pl.col("method"),
        pl.col("is_fallback"),
        pl.col("used").alias("trades_used"),
        pl.col("excluded").alias("block_trades_excluded"),
        pl.col("liquidations"),
        pl.col("net").alias("net_taker_contracts"),
        pl.col("gross").alias("gross_taker_contracts"),
        pl.col("block_net").alias("block_net_taker_contracts"),
        pl.col("is_capped"),
    ]


def oi_reconciliation(chain: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """Open-interest changes against the traded amount between consecutive snapshots of each instrument.

    One row per (currency, snapshot_ts, instrument_name) that has an earlier snapshot of the same
    instrument in ``chain`` (``prev_snapshot_ts``): ``delta_oi`` = OI - previous OI (contracts);
    ``traded_amount`` = sum of ``amount`` of every trade (blocks and combo legs included) with
    ``prev_snapshot_ts < ts <= snapshot_ts``; ``trades`` their count. Open interest cannot move by
    more than was traded, so ``is_violation`` = |delta_oi| > traded_amount + 1e-9 flags a tape gap
    (or a snapshot error) for that interval.
    """
    _check_inputs(chain, trades)
    if chain.is_empty():
        return pl.DataFrame(schema=OI_RECONCILIATION)
    by = ["currency", "instrument_name"]
    out = (
        _as_of_tape(chain, trades, _chain_columns(chain), include_blocks=True)
        .sort("snapshot_ts")
        .with_columns(
            pl.col("snapshot_ts").shift(1).over(by).alias("prev_snapshot_ts"),
            pl.col("open_interest").shift(1).over(by).alias("prev_open_interest"),
            (pl.col("traded") - pl.col("traded").shift(1).over(by)).alias("traded_amount"),
            (pl.col("trades") - pl.col("trades").shift(1).over(by)).alias("trades_between"),
        )
        .filter(pl.col("prev_snapshot_ts").is_not_null())
        .with_columns((pl.col("open_interest") - pl.col("prev_open_interest")).alias("delta_oi"))
        .with_columns((pl.col("delta_oi").abs() > pl.col("traded_amount") + VIOLATION_TOLERANCE).alias("is_violation"))
        .select(
            "currency",
            "snapshot_ts",
            "instrument_name",
            "prev_snapshot_ts",
            "open_interest",
            "prev_open_interest",
            "delta_oi",
            "traded_amount",
            pl.col("trades_between").alias("trades"),
            "is_violation",
        )
        .sort("currency", "snapshot_ts", "instrument_name")
        .collect()
    )
    return out.cast(OI_RECONCILIATION)


def tape_coverage(chain: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """How much of each snapshot's open interest the tape can account for; one row per (currency, snapshot_ts).

    For instrument i with open interest OI_i and V_i = sum of ``amount`` of its trades with
    ``ts <= snapshot_ts`` in ``trades``: every open contract was created by at least one traded
    contract, so the tape can account for at most min(OI_i, V_i) of it.

    - ``oi_explained`` = sum_i min(OI_i, V_i); ``open_interest`` = sum_i OI_i;
    - ``coverage`` = oi_explained / open_interest, in [0, 1] (null when open_interest is 0): 1 when
      every instrument traded at least its open interest in the tape, 0 when the tape has no trade
      on the chain. An upper bound on the share of OI the tape explains (a tape starting after
      listing, or OI opened and closed by different trades, explains less);
    - ``coverage_taker``: the same with V_i over trades with an aggressor only (no block, no combo
      leg) - the trades ``taker_flow_positions`` counts by default;
    - ``oi_traded_share`` = share of open interest in instruments with at least one trade;
    - ``instruments`` / ``instruments_traded``: rows of the snapshot / of them with V_i > 0.
    """
    _check_inputs(chain, trades)
    if chain.is_empty():
        return pl.DataFrame(schema=TAPE_COVERAGE)
    oi = pl.col("open_interest")
    total = oi.sum()
    out = (
        _as_of_tape(chain, trades, _chain_columns(chain), include_blocks=True)
        .group_by("currency", "snapshot_ts")
        .agg(
            pl.len().cast(pl.Int64).alias("instruments"),
            (pl.col("traded") > 0).sum().cast(pl.Int64).alias("instruments_traded"),
            total.alias("open_interest"),
            pl.min_horizontal(oi, pl.col("traded")).sum().alias("oi_explained"),
            pl.min_horizontal(oi, pl.col("taker_traded")).sum().alias("_taker_explained"),
            oi.filter(pl.col("traded") > 0).sum().alias("_oi_traded"),
        )
        .with_columns(
            *(
                pl.when(pl.col("open_interest") > 0).then(pl.col(num) / pl.col("open_interest")).alias(name)
                for num, name in (
                    ("oi_explained", "coverage"),
                    ("_taker_explained", "coverage_taker"),
                    ("_oi_traded", "oi_traded_share"),
                )
            )
        )
        .select(list(TAPE_COVERAGE))
        .sort("currency", "snapshot_ts")
        .collect()
    )
    return out.cast(TAPE_COVERAGE)
