-- one row per (currency, snapshot_ts, model): spot, zero gamma, walls and total GEX over the stored snapshots, with changes
-- spot, zero_gamma, call_wall, put_wall in USD; zero_gamma_pct_from_spot in percent (< 0 = zero gamma below spot);
-- total_gex_usd in USD per 1 % move (is_long_gamma = total_gex_usd > 0). *_change_1h / *_change_24h = this snapshot
-- minus the snapshot of the same currency and model closest to snapshot_ts - 1 h (within +-15 min) / - 24 h (within
-- +-6 h), named by ts_1h_ago / ts_24h_ago; NULL when no snapshot lies in that window (or either value is NULL).
create or replace view key_levels_history as
with levels as (
    select currency, snapshot_ts, model, spot, zero_gamma, call_wall, put_wall, total_gex_usd
    from key_levels
),
ago_1h as (
    select
        a.currency, a.snapshot_ts, a.model, b.snapshot_ts as ts_1h_ago,
        b.spot as spot_1h, b.zero_gamma as zero_gamma_1h, b.call_wall as call_wall_1h,
        b.put_wall as put_wall_1h, b.total_gex_usd as total_gex_1h
    from levels a
    join levels b
        on a.currency = b.currency and a.model = b.model
        and b.snapshot_ts between a.snapshot_ts - interval 75 minute and a.snapshot_ts - interval 45 minute
    qualify row_number() over (
        partition by a.currency, a.snapshot_ts, a.model
        order by abs(epoch_ms(b.snapshot_ts) - (epoch_ms(a.snapshot_ts) - 3600000)), b.snapshot_ts
    ) = 1
),
ago_24h as (
    select
        a.currency, a.snapshot_ts, a.model, b.snapshot_ts as ts_24h_ago,
        b.spot as spot_24h, b.zero_gamma as zero_gamma_24h, b.call_wall as call_wall_24h,
        b.put_wall as put_wall_24h, b.total_gex_usd as total_gex_24h
    from levels a
    join levels b
        on a.currency = b.currency and a.model = b.model
        and b.snapshot_ts between a.snapshot_ts - interval 30 hour and a.snapshot_ts - interval 18 hour
    qualify row_number() over (
        partition by a.currency, a.snapshot_ts, a.model
        order by abs(epoch_ms(b.snapshot_ts) - (epoch_ms(a.snapshot_ts) - 86400000)), b.snapshot_ts
    ) = 1
),
final as (
    select
        l.currency,
        l.snapshot_ts,
        l.model,
        l.spot,
        l.zero_gamma,
        (l.zero_gamma / l.spot - 1) * 100 as zero_gamma_pct_from_spot,
        l.call_wall,
        l.put_wall,
        l.total_gex_usd,
        l.total_gex_usd > 0 as is_long_gamma,
        h.ts_1h_ago,
        l.spot - h.spot_1h as spot_change_1h,
        l.zero_gamma - h.zero_gamma_1h as zero_gamma_change_1h,
        l.call_wall - h.call_wall_1h as call_wall_change_1h,
        l.put_wall - h.put_wall_1h as put_wall_change_1h,
        l.total_gex_usd - h.total_gex_1h as total_gex_change_1h,
        d.ts_24h_ago,
        l.spot - d.spot_24h as spot_change_24h,
        l.zero_gamma - d.zero_gamma_24h as zero_gamma_change_24h,
        l.call_wall - d.call_wall_24h as call_wall_change_24h,
        l.put_wall - d.put_wall_24h as put_wall_change_24h,
        l.total_gex_usd - d.total_gex_24h as total_gex_change_24h
    from levels l
    left join ago_1h h using (currency, snapshot_ts, model)
    left join ago_24h d using (currency, snapshot_ts, model)
)
select * from final;
