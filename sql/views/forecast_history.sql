-- one row per (currency, snapshot_ts, model, horizon): the hedge-flow forecast made at every stored snapshot from that
-- snapshot alone (t0 = snapshot_ts; columns as forecast_summary) plus total_gex_usd and gex_expiring_24h_share at t0.
-- Written by gexflow grade; the daily published forecast stays in forecast_summary.
create or replace view forecast_history as
with source as (
    select * from read_parquet(gexflow_lake() || '/forecast_history/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, forecast_date, model, horizon, horizon_hours, t0, snapshot_ts, horizon_end_ts, spot,
        sigma_atm, sigma_move_pct, expected_flow_coins, expected_flow_usd, expected_abs_flow_coins,
        expected_abs_flow_usd, flow_at_spot_coins, charm_flow_coins, expiry_flow_coins, price_minus_2sigma,
        price_minus_1sigma, price_plus_1sigma, price_plus_2sigma, flow_minus_2sigma_coins,
        flow_minus_1sigma_coins, flow_plus_1sigma_coins, flow_plus_2sigma_coins, flow_minus_2sigma_usd,
        flow_minus_1sigma_usd, flow_plus_1sigma_usd, flow_plus_2sigma_usd, zero_gamma, call_wall, put_wall,
        total_gex_usd, gex_expiring_24h_share
    from source
)
select * from final;
