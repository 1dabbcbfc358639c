-- one row per (currency, snapshot_ts, model, tenor): key levels of the options expiring within 1, 7, 30 days ('1d',
-- '7d', '30d', cumulative; max_days = N) and of every option ('all' = key_levels). total_gex_usd in USD per 1 % move;
-- dealer_delta_coins (coins), vanna_coins_per_vol (coins per +1 vol point), charm_coins_per_day (coins per day);
-- zero_gamma: root of the bucket's re-priced GEX profile nearest spot (USD, NULL when none within +-25 %);
-- call_wall / put_wall / abs_gamma_strike: USD strikes of the bucket by open interest (model-independent).
create or replace view key_levels_by_tenor as
with source as (
    select * from read_parquet(gexflow_lake() || '/key_levels_by_tenor/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, tenor, max_days, spot, expiries,
        total_gex_usd, dealer_delta_coins, vanna_coins_per_vol, charm_coins_per_day,
        zero_gamma, zero_gamma_roots, call_wall, put_wall, abs_gamma_strike
    from source
)
select * from final;
