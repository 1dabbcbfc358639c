-- one row per (currency, snapshot_ts, model): the levels analysts watch
-- spot (USD index); total_gex_usd (USD per 1 % move, > 0 = dealers long gamma); zero_gamma (USD, root of the
-- re-priced GEX profile nearest spot, NULL when the profile keeps one sign within +-25 %); zero_gamma_roots;
-- call_wall / put_wall / abs_gamma_strike (USD strikes, by open interest, model-independent);
-- max_pain (USD, nearest expiry with OI) and max_pain_expiry; gex_expiring_24h_share (0..1);
-- *_vs_naive: this model minus the naive model (0 / NULL for naive itself).
create or replace view key_levels as
with source as (
    select * from read_parquet(gexflow_lake() || '/key_levels/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, spot, total_gex_usd, zero_gamma, zero_gamma_roots,
        call_wall, put_wall, abs_gamma_strike, max_pain, max_pain_expiry, gex_expiring_24h_share,
        naive_total_gex_usd, total_gex_vs_naive_usd, zero_gamma_vs_naive
    from source
)
select * from final;
