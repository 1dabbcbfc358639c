-- one row per currency in the warehouse: what is stored, what is computed, and how current each part is
-- snapshots, computed_snapshots: distinct snapshot_ts in option_snapshots and in key_levels; not_computed =
-- their difference (run `gexflow compute`). failed_snapshots: ingest_runs rows with status 'failed'
-- (snapshots a backfill quarantined). trades, last_trade_ts, watermark_ts: the tape stored under that
-- currency (a USDC tape sits under USDC). Times are UTC. No parameters.
with snapshots as (
    select
        currency,
        count(distinct snapshot_ts) as snapshots,
        min(snapshot_ts) as first_snapshot_ts,
        max(snapshot_ts) as last_snapshot_ts
    from option_snapshots
    group by currency
),
computed as (
    select currency, count(distinct snapshot_ts) as computed_snapshots
    from key_levels
    group by currency
),
runs as (
    select
        currency,
        max(finished_ts) filter (where status = 'ok') as last_ingest_ts,
        count(*) filter (where status = 'failed') as failed_snapshots
    from ingest_runs
    group by currency
),
tape as (
    select currency, count(*) as trades, max(ts) as last_trade_ts
    from trades
    group by currency
),
marks as (
    select currency, watermark_ts
    from trade_watermarks
),
forecasts as (
    select currency, max(forecast_date) as last_forecast_date
    from flow_forecast
    group by currency
),
currencies as (
    select currency from snapshots
    union
    select currency from tape
    union
    select currency from marks
    union
    select currency from forecasts
),
final as (
    select
        c.currency,
        coalesce(s.snapshots, 0) as snapshots,
        s.first_snapshot_ts,
        s.last_snapshot_ts,
        coalesce(k.computed_snapshots, 0) as computed_snapshots,
        coalesce(s.snapshots, 0) - coalesce(k.computed_snapshots, 0) as not_computed,
        r.last_ingest_ts,
        coalesce(r.failed_snapshots, 0) as failed_snapshots,
        coalesce(t.trades, 0) as trades,
        t.last_trade_ts,
        m.watermark_ts,
        f.last_forecast_date
    from currencies as c
    left join snapshots as s on s.currency = c.currency
    left join computed as k on k.currency = c.currency
    left join runs as r on r.currency = c.currency
    left join tape as t on t.currency = c.currency
    left join marks as m on m.currency = c.currency
    left join forecasts as f on f.currency = c.currency
)
select * from final
order by currency;
