-- one row per (snapshot_ts, model): where zero gamma sat relative to spot over time for $currency
-- spot and zero_gamma in USD (zero_gamma NULL when the re-priced GEX keeps one sign within the grid);
-- zero_gamma_pct_from_spot in percent (< 0 = zero gamma below spot); total_gex_usd in USD per 1 % move;
-- is_long_gamma = dealers long gamma at spot (total_gex_usd > 0).
-- Parameters: $currency (e.g. 'BTC'), $since (UTC timestamp, inclusive, e.g. '2026-01-01').
with levels as (
    select * from key_levels
    where currency = $currency
      and snapshot_ts >= cast($since as timestamptz)
),
final as (
    select
        snapshot_ts,
        model,
        spot,
        zero_gamma,
        (zero_gamma / spot - 1) * 100 as zero_gamma_pct_from_spot,
        total_gex_usd,
        total_gex_usd > 0 as is_long_gamma
    from levels
)
select * from final
order by snapshot_ts, model;
