-- one row per computed (currency, snapshot_ts): what its analytics were computed from (state table, replaced on
-- each recompute; see pipelines/store/inputs.py): the option_snapshots file and its sha256, the coin's trade tape up
-- to the snapshot (trades counted, where the tapes start) and the analytics code version.
create or replace view analytics_inputs as
with source as (
    select * from read_parquet(gexflow_lake() || '/_state/analytics_inputs/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency,
        snapshot_ts,
        computed_ts,
        analytics_version,
        snapshot_file,
        snapshot_sha256,
        tape_trades,
        tape_start_ts,
        linear_tape_start_ts,
        include_blocks
    from source
)
select * from final;
