-- one row per (currency, snapshot_ts, model, horizon): the forecast made at the snapshot (t0 = snapshot_ts) graded
-- against the recorded index (gexflow grade; docs/forecast-grading.md). status = 'graded' | 'no_price' (no recording
-- in [t0 + h - 1 h, t0 + h] after t0). realised_log_move = ln(realised_price / spot); implied_var = total variance of the
-- forecast to t0 + h; implied_sd = its sd to realised_ts; z = (move + sd^2/2) / sd ~ N(0, 1) if calibrated; pit = Phi(z);
-- crps / log_score of the forecast's log-normal (log-return units, lower is better); regime at t0: total_gex_usd,
-- gex_positive, zero_gamma_distance_sd (ln(spot / zero_gamma) in implied sd), gex_expiring_24h_share.
create or replace view forecast_grades as
with source as (
    select * from read_parquet(gexflow_lake() || '/forecast_grades/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, horizon, horizon_hours, horizon_end_ts, status, spot, sigma_atm,
        implied_var, expected_flow_coins, total_gex_usd, gex_positive, zero_gamma, zero_gamma_distance_sd,
        gex_expiring_24h_share, call_wall, put_wall, realised_ts, realised_price, realised_source,
        elapsed_hours, realised_log_move, implied_sd, z, pit, in_1sigma, in_2sigma, crps, log_score,
        flow_direction_hit, call_wall_touched, put_wall_touched
    from source
)
select * from final;
