-- one row per (currency, forecast_date, model, horizon_hours, price_level): the daily dealer hedge-flow forecast
-- (horizon = '1h' | '24h' | ... | 'next_expiry' labels the row; it breaks the tie when the next expiry is exactly a
-- fixed horizon away). t0 = forecast start, horizon_end_ts = t0 + horizon_hours, snapshot_ts = the chain used (UTC).
-- price_level = S' (USD) at t0 + h; pct_move = (S'/S0 - 1) * 100; spot = S0 (USD); sigma_atm in percent.
-- hedge_flow_coins = -(D(S', t0 + h) - D(S0, t0)): coins dealers trade to stay hedged, > 0 = dealers BUY;
-- hedge_flow_usd = hedge_flow_coins * price_level. Components in coins, summing to hedge_flow_coins:
-- gamma (price move at t0; 0 at spot), charm (time decay at spot), expiry (+ dealer delta of the options settling
-- by t0 + h: their hedges unwind), remainder (cross term). probability_weight: log-normal bin probability, sums to 1
-- per (currency, forecast_date, model, horizon).
create or replace view flow_forecast as
with source as (
    select * from read_parquet(gexflow_lake() || '/flow_forecast/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency,
        forecast_date,
        model,
        horizon,
        horizon_hours,
        price_level,
        pct_move,
        t0,
        snapshot_ts,
        horizon_end_ts,
        spot,
        sigma_atm,
        hedge_flow_coins,
        hedge_flow_usd,
        gamma_flow_coins,
        charm_flow_coins,
        expiry_flow_coins,
        remainder_flow_coins,
        probability_weight
    from source
)
select * from final;
