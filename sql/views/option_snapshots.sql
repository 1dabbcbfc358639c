-- one row per (currency, snapshot_ts, instrument_name): the option chain as Deribit's book summary showed it
-- open_interest in contracts (= coins for BTC/ETH); mark_iv in percent; mark_price/bid/ask in the
-- settlement currency (coin for inverse options); underlying_price = the expiry's forward in USD;
-- index_price = spot index in USD; snapshot_ts = the book summary's creation_timestamp (UTC).
create or replace view option_snapshots as
with source as (
    select * from read_parquet(gexflow_lake() || '/option_snapshots/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency,
        snapshot_ts,
        instrument_name,
        option_type,
        strike,
        expiration_ts,
        contract_size,
        is_linear,
        open_interest,
        mark_iv,
        mark_price,
        bid_price,
        ask_price,
        underlying_price,
        underlying_index,
        index_price,
        source
    from source
)
select * from final;
