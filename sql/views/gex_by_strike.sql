-- one row per (currency, snapshot_ts, model, expiration_ts, strike); expiration_ts NULL = all expiries summed
-- call_gex_usd / put_gex_usd / net_gex_usd: dealer gamma exposure in USD per 1 % move of the underlying,
-- dealer-signed (q * contract_size * gamma * F^2 * 0.01); net > 0 = dealers long gamma (dampening).
-- call/put_open_interest in contracts. vanna_coins_per_vol / vanna_usd_per_vol: change of dealer delta for IV +1 vol
-- point (coins; USD = coins x the option's forward); charm_coins_per_day / charm_usd_per_day: change of dealer delta
-- per day passing. > 0 = dealers must sell to stay hedged. NULL in files computed before these columns existed.
create or replace view gex_by_strike as
with source as (
    select * from read_parquet(gexflow_lake() || '/gex_by_strike/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, expiration_ts, strike,
        call_gex_usd, put_gex_usd, net_gex_usd, call_open_interest, put_open_interest,
        vanna_coins_per_vol, vanna_usd_per_vol, charm_coins_per_day, charm_usd_per_day
    from source
)
select * from final;
