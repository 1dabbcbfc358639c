-- one row per (currency, snapshot_ts, model, expiration_ts): dealer exposure of each expiry at the snapshot
-- gex_usd: USD per 1 % move (> 0 = dealers long gamma); dealer_delta_coins (DEX, coins; dealers hold -DEX as hedge)
-- and dealer_delta_usd (coins x the option's forward); vanna_*_per_vol: change of dealer delta for IV +1 vol point;
-- charm_*_per_day: change of dealer delta per day passing (> 0 = dealers must sell to stay hedged);
-- open interest in contracts; hours_to_expiry from snapshot_ts. Summed over expiries = the snapshot totals.
create or replace view exposure_by_expiry as
with source as (
    select * from read_parquet(gexflow_lake() || '/exposure_by_expiry/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, expiration_ts, hours_to_expiry, options,
        gex_usd, dealer_delta_coins, dealer_delta_usd,
        vanna_coins_per_vol, vanna_usd_per_vol, charm_coins_per_day, charm_usd_per_day,
        open_interest, call_open_interest, put_open_interest
    from source
)
select * from final;
