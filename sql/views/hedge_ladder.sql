-- one row per (currency, snapshot_ts, model, band_coins, direction, rung): the trigger prices of a band hedger
-- (a dealer who re-hedges only when its delta has drifted one band since the last re-hedge), up to +-5 % from spot.
-- band_gamma = 0.25, 0.5, 1, 2 x the dealer gamma at spot (|total GEX| / spot: the coins dealer delta moves per 1 %
-- move); band_coins = the band in coins. price_level = the trigger price S_k (USD), pct_from_spot its distance from
-- spot in %; order_coins = the rebalancing order there, exactly one band, > 0 = dealers buy (order_usd = coins x S_k);
-- cumulative_coins = the orders so far; continuous_flow_coins = what a continuous hedger has traded from spot to S_k
-- (within one band of cumulative_coins). Model and assumptions: docs/methodology.md, "Threshold rebalancing".
create or replace view hedge_ladder as
with source as (
    select * from read_parquet(gexflow_lake() || '/hedge_ladder/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, band_gamma, band_coins, direction, rung, price_level, pct_from_spot,
        order_coins, order_usd, cumulative_coins, continuous_flow_coins
    from source
)
select * from final;
