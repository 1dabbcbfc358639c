-- one row per (currency, snapshot_ts, model, expiration_ts): what leaves the dealer book at each upcoming settlement
-- (the snapshot used by the daily forecast of that date; greeks as of snapshot_ts). hours_to_expiry from snapshot_ts;
-- open_interest in contracts; dealer_gex_usd in USD per 1 % move; dealer_delta_coins in coins (dealers hold
-- -dealer_delta_coins as hedge); dealer_charm_coins_per_day = change of dealer delta per day passing (coins/day);
-- unwind_flow_coins = +dealer_delta_coins: coins dealers BUY (> 0) when those hedges unwind; unwind_flow_usd at spot.
create or replace view expiry_rolloff as
with source as (
    select * from read_parquet(gexflow_lake() || '/expiry_rolloff/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency,
        snapshot_ts,
        model,
        expiration_ts,
        hours_to_expiry,
        spot,
        options,
        open_interest,
        call_open_interest,
        put_open_interest,
        dealer_gex_usd,
        dealer_delta_coins,
        dealer_charm_coins_per_day,
        unwind_flow_coins,
        unwind_flow_usd
    from source
)
select * from final;
