-- one row per (currency, snapshot_ts): how much of the snapshot's open interest the stored trade tape can explain
-- coverage = sum_i min(OI_i, traded_i) / sum_i OI_i over trades up to snapshot_ts (0..1, an upper bound);
-- coverage_taker: the same with trades that have an aggressor only (what taker_flow counts);
-- oi_traded_share: share of OI in instruments that traded at all. open_interest / oi_explained in contracts.
create or replace view tape_coverage as
with source as (
    select * from read_parquet(gexflow_lake() || '/tape_coverage/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, instruments, instruments_traded, open_interest, oi_explained,
        coverage, coverage_taker, oi_traded_share
    from source
)
select * from final;
