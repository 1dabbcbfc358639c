-- one row per (currency, snapshot_ts, model, expiration_ts, strike); expiration_ts NULL = all expiries summed
-- call_gex_usd / put_gex_usd / net_gex_usd: dealer gamma exposure in USD per 1 % move of the underlying,
-- dealer-signed (q * contract_size * gamma * F^2 * 0.01); net > 0 = dealers long gamma (dampening).
-- call/put_open_interest in contracts.
create or replace view gex_by_strike as
with source as (
    select * from read_parquet(gexflow_lake() || '/gex_by_strike/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, expiration_ts, strike,
        call_gex_usd, put_gex_usd, net_gex_usd, call_open_interest, put_open_interest
    from source
)
select * from final;
