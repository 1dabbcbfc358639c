-- one row per (currency, forecast_date, model, horizon): the flow forecast weighted by the implied distribution
-- spot (USD); sigma_atm (percent, annualised); sigma_move_pct = sigma_atm * sqrt(horizon_hours / 8760) (percent);
-- expected_flow_* = sum w * flow, expected_abs_flow_* = sum w * |flow| (coins; USD = coins * price level);
-- flows > 0 = dealers BUY. price_minus_2sigma .. price_plus_2sigma = spot * exp(k * sigma_move_pct / 100) (USD) and
-- flow_*sigma_coins/usd the hedge flow there (NULL beyond the +-25 % grid); charm_flow_coins and expiry_flow_coins
-- are the level-independent components; zero_gamma, call_wall, put_wall (USD) from key_levels at the snapshot.
create or replace view forecast_summary as
with source as (
    select * from read_parquet(gexflow_lake() || '/forecast_summary/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency,
        forecast_date,
        model,
        horizon,
        horizon_hours,
        t0,
        snapshot_ts,
        horizon_end_ts,
        spot,
        sigma_atm,
        sigma_move_pct,
        expected_flow_coins,
        expected_flow_usd,
        expected_abs_flow_coins,
        expected_abs_flow_usd,
        flow_at_spot_coins,
        charm_flow_coins,
        expiry_flow_coins,
        price_minus_2sigma,
        price_minus_1sigma,
        price_plus_1sigma,
        price_plus_2sigma,
        flow_minus_2sigma_coins,
        flow_minus_1sigma_coins,
        flow_plus_1sigma_coins,
        flow_plus_2sigma_coins,
        flow_minus_2sigma_usd,
        flow_minus_1sigma_usd,
        flow_plus_1sigma_usd,
        flow_plus_2sigma_usd,
        zero_gamma,
        call_wall,
        put_wall
    from source
)
select * from final;
