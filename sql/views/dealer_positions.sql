-- one row per (currency, snapshot_ts, model, instrument_name): the dealer book a positioning model implies
-- dealer_contracts: signed contracts, + = dealers long. method: the rule that produced the row
-- (naive: +OI calls / -OI puts; customer_long: -OI; custom: the user's book; taker_flow: tape_full,
-- tape_partial or naive_fallback). The taker_* columns are NULL for models other than taker_flow.
create or replace view dealer_positions as
with source as (
    select * from read_parquet(gexflow_lake() || '/dealer_positions/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, instrument_name, dealer_contracts, method, is_fallback,
        trades_used, block_trades_excluded, liquidations, net_taker_contracts, gross_taker_contracts, is_capped
    from source
)
select * from final;
