-- one row per model: the key levels of the latest snapshot of $currency
-- spot, zero_gamma, call_wall, put_wall, abs_gamma_strike, max_pain in USD; total_gex_usd in USD per 1 % move
-- (> 0 = dealers long gamma); zero_gamma_pct_from_spot in percent; gex_expiring_24h_share in 0..1.
-- Parameters: $currency (e.g. 'BTC').
with levels as (
    select * from key_levels
    where currency = $currency
),
latest as (
    select *
    from levels
    qualify snapshot_ts = max(snapshot_ts) over ()
),
final as (
    select
        currency,
        snapshot_ts,
        model,
        spot,
        total_gex_usd,
        zero_gamma,
        (zero_gamma / spot - 1) * 100 as zero_gamma_pct_from_spot,
        call_wall,
        put_wall,
        abs_gamma_strike,
        max_pain,
        max_pain_expiry,
        gex_expiring_24h_share
    from latest
)
select * from final
order by model;
