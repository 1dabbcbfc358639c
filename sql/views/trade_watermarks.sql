-- one row per currency: where the next incremental trades run starts (state, lake/_state/trade_watermarks)
-- watermark_ts = the next run's start_timestamp (inclusive; the overlap is de-duplicated), UTC;
-- fetched_until_ts = the end_timestamp of the run that set it; updated_ts = when that run published.
create or replace view trade_watermarks as
with source as (
    select * from read_parquet(gexflow_lake() || '/_state/trade_watermarks/**/*.parquet', union_by_name = true)
),
latest as (
    select *
    from source
    qualify row_number() over (partition by currency order by updated_ts desc) = 1
),
final as (
    select currency, watermark_ts, last_trade_id, fetched_until_ts, run_id, updated_ts
    from latest
)
select * from final;
