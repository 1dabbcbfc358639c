-- one row per (run_id, currency, snapshot_ts): what each ingest run landed (state table, append-only)
create or replace view ingest_runs as
with source as (
    select * from read_parquet(gexflow_lake() || '/_state/ingest_runs/**/*.parquet', union_by_name = true)
),
final as (
    select run_id, started_ts, finished_ts, source, currency, snapshot_ts, options, open_interest, status, message
    from source
)
select * from final;
