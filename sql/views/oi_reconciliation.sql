-- one row per (currency, snapshot_ts, instrument_name) that has an earlier stored snapshot (prev_snapshot_ts)
-- delta_oi = open_interest - prev_open_interest (contracts); traded_amount = contracts traded in
-- (prev_snapshot_ts, snapshot_ts], blocks and combo legs included; is_violation = |delta_oi| > traded_amount:
-- open interest moved more than was traded, so the tape has a gap there.
create or replace view oi_reconciliation as
with source as (
    select * from read_parquet(gexflow_lake() || '/oi_reconciliation/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, instrument_name, prev_snapshot_ts, open_interest, prev_open_interest,
        delta_oi, traded_amount, trades, is_violation
    from source
)
select * from final;
