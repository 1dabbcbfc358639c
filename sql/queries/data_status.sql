-- one row per currency in the warehouse: what is stored, what is computed, and how current each part is
-- snapshots, computed_snapshots: distinct snapshot_ts in option_snapshots and in key_levels; not_computed =
-- their difference, stale = computed snapshots whose inputs changed since (run `gexflow compute`, or `run`:
-- both recompute them). A computed snapshot is stale when its analytics_inputs record is missing, names another
-- analytics version than $analytics_version, or its option_snapshots file's sha256 or the coin's trade tape up
-- to the snapshot (trades counted, where the tapes start) differ from the record (rules of pipelines/store/inputs.py).
-- failed_snapshots: ingest_runs rows with status 'failed' (snapshots a backfill quarantined). trades,
-- last_trade_ts, watermark_ts: the tape stored under that currency (a USDC tape sits under USDC). Times are UTC.
-- Parameter: $analytics_version (`gexflow status` passes the installed one).
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
computed_snapshots as (
    select distinct currency, snapshot_ts
    from key_levels
),
snapshot_files as (
    select replace(filename, gexflow_lake() || '/', '') as snapshot_file, sha256(content) as snapshot_sha256
    from read_blob(gexflow_lake() || '/option_snapshots/**/*.parquet')
),
coin_trades as (
    -- a USDC/USDT trade belongs to the coin its instrument name starts with (SOL_USDC-...)
    select
        case
            when currency in ('USDC', 'USDT') and contains(instrument_name, '_')
                then split_part(instrument_name, '_', 1)
            else currency
        end as currency,
        ts
    from trades
),
tape_counts as (
    select
        currency,
        ts,
        count(*) over (partition by currency order by ts range between unbounded preceding and current row) as upto
    from coin_trades
),
tape_starts as (
    select currency, min(start_ts) as start_ts
    from trade_runs
    group by currency
),
linear_start as (
    select max(start_ts) as start_ts
    from tape_starts
    where currency in ('USDC', 'USDT')
),
freshness as (
    select
        k.currency,
        k.snapshot_ts,
        i.snapshot_ts is null
        or i.analytics_version <> $analytics_version
        or i.snapshot_sha256 is distinct from f.snapshot_sha256
        or i.tape_trades <> coalesce(t.upto, 0)
        or i.tape_start_ts is distinct from s.start_ts
        or i.linear_tape_start_ts is distinct from (select start_ts from linear_start) as is_stale
    from computed_snapshots as k
    left join analytics_inputs as i on i.currency = k.currency and i.snapshot_ts = k.snapshot_ts
    left join snapshot_files as f on f.snapshot_file = i.snapshot_file
    asof left join tape_counts as t on t.currency = k.currency and k.snapshot_ts >= t.ts
    left join tape_starts as s on s.currency = k.currency
),
stale as (
    select currency, count(*) filter (where is_stale) as stale
    from freshness
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
        coalesce(st.stale, 0) as stale,
        r.last_ingest_ts,
        coalesce(r.failed_snapshots, 0) as failed_snapshots,
        coalesce(t.trades, 0) as trades,
        t.last_trade_ts,
        m.watermark_ts,
        f.last_forecast_date
    from currencies as c
    left join snapshots as s on s.currency = c.currency
    left join computed as k on k.currency = c.currency
    left join stale as st on st.currency = c.currency
    left join runs as r on r.currency = c.currency
    left join tape as t on t.currency = c.currency
    left join marks as m on m.currency = c.currency
    left join forecasts as f on f.currency = c.currency
)
select * from final
order by currency;
