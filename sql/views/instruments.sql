-- one row per (currency, instrument_name): the latest recorded version of each option instrument
-- strike in USD; contract_size in coins of the underlying; expiration_ts is the 08:00 UTC settlement.
create or replace view instruments as
with source as (
    select * from read_parquet(gexflow_lake() || '/instruments/**/*.parquet', union_by_name = true)
),
latest as (
    select *
    from source
    qualify row_number() over (partition by currency, instrument_name order by seen_ts desc) = 1
),
final as (
    select
        currency,
        instrument_name,
        option_type,
        strike,
        expiration_ts,
        contract_size,
        settlement_period,
        settlement_currency,
        price_index,
        is_linear,
        listed_ts,
        seen_ts as last_seen_ts
    from latest
)
select * from final;
