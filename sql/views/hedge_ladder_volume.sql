-- one row per (currency, snapshot_ts, model, band_coins, direction, move_pct): what a band hedger trades over a
-- move of 1, 2 or 5 % up or down from spot (bands as in hedge_ladder). rungs = orders triggered; traded_coins =
-- sum |order| (traded_usd at the trigger prices); net_coins = sum order (> 0 = dealers bought);
-- continuous_net_coins / continuous_traded_coins = a continuous hedger's net flow and traded volume (the total
-- variation of its delta on a 0.05 % grid) over the same move; complete = false when the ladder stopped at 500 rungs.
create or replace view hedge_ladder_volume as
with source as (
    select * from read_parquet(gexflow_lake() || '/hedge_ladder_volume/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, band_gamma, band_coins, direction, move_pct, rungs, traded_coins, traded_usd,
        net_coins, continuous_net_coins, continuous_traded_coins, complete
    from source
)
select * from final;
