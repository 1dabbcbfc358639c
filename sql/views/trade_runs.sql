-- one row per (run_id, currency): what each trades run fetched and stored (state table, append-only)
-- fetched counts every trade received (overlapping pages included); new = added to the lake;
-- duplicates = fetched - new; warnings = why paging stopped early, '; '-joined ('' when none).
create or replace view trade_runs as
with source as (
    select * from read_parquet(gexflow_lake() || '/_state/trade_runs/**/*.parquet', union_by_name = true)
),
final as (
    select run_id, currency, started_ts, start_ts, end_ts, pages, fetched, new, duplicates, watermark_ts, warnings
    from source
)
select * from final;
