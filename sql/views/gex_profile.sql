-- one row per (currency, snapshot_ts, model, price_level): the book re-priced at spot level price_level (USD)
-- dealer_gex_usd: USD per 1 % move at that level; dealer_delta: coins; hedge_flow_coins = -(D(S') - D(S0)):
-- coins dealers must trade to stay hedged going from spot to this level (> 0 = dealers buy);
-- hedge_flow_usd = hedge_flow_coins * price_level. Forwards move with spot; vol sticky-strike.
create or replace view gex_profile as
with source as (
    select * from read_parquet(gexflow_lake() || '/gex_profile/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, price_level, pct_from_spot,
        dealer_gex_usd, dealer_delta, hedge_flow_coins, hedge_flow_usd
    from source
)
select * from final;
