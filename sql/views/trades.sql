-- one row per (currency, trade_id): Deribit option trades, de-duplicated at ingestion (lake/trades)
-- currency = the currency the tape was queried for (BTC, ETH, USDC); ts = trade time (UTC);
-- direction = the TAKER's side (buy/sell); amount and contracts in contracts (= coins of the underlying
-- for BTC/ETH options, the unit of open_interest); price and mark_price in the settlement currency (coin
-- for inverse options); iv in percent; index_price in USD; liquidation 'M'/'T'/'MT' or NULL.
-- is_block: part of a block trade; is_combo: a leg of a combo trade; both have no reliable aggressor.
create or replace view trades as
with source as (
    select * from read_parquet(gexflow_lake() || '/trades/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency,
        trade_id,
        ts,
        instrument_name,
        direction,
        amount,
        price,
        iv,
        index_price,
        mark_price,
        contracts,
        trade_seq,
        tick_direction,
        liquidation,
        block_trade_id,
        block_trade_leg_count,
        combo_id,
        combo_trade_id,
        block_rfq_id,
        is_block,
        is_combo,
        is_liquidation
    from source
)
select * from final;
