-- one row per (currency, index_ts): recorded <C>-PERPETUAL index prices from Tardis derivative_ticker files (the last
-- recording of each minute), imported by gexflow grade --tardis DIR; real recordings only.
create or replace view index_prices as
with source as (
    select * from read_parquet(gexflow_lake() || '/index_prices/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, index_ts, index_price, source
    from source
)
select * from final;
