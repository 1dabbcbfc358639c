-- one row per (model, expiration_ts): dealer gamma exposure per expiry at the latest snapshot of $currency
-- call_gex_usd / put_gex_usd / net_gex_usd in USD per 1 % move (dealer-signed, > 0 = dealers long gamma);
-- share_of_abs_gex = |net_gex_usd| / sum over expiries of |net_gex_usd| (0..1); open interest in contracts;
-- hours_to_expiry from the snapshot.
-- Parameters: $currency (e.g. 'BTC').
with strikes as (
    select * from gex_by_strike
    where currency = $currency
      and expiration_ts is not null
),
latest as (
    select *
    from strikes
    qualify snapshot_ts = max(snapshot_ts) over ()
),
per_expiry as (
    select
        currency,
        snapshot_ts,
        model,
        expiration_ts,
        sum(call_gex_usd) as call_gex_usd,
        sum(put_gex_usd) as put_gex_usd,
        sum(net_gex_usd) as net_gex_usd,
        sum(call_open_interest) as call_open_interest,
        sum(put_open_interest) as put_open_interest
    from latest
    group by currency, snapshot_ts, model, expiration_ts
),
final as (
    select
        currency,
        snapshot_ts,
        model,
        expiration_ts,
        date_diff('second', snapshot_ts, expiration_ts) / 3600.0 as hours_to_expiry,
        call_gex_usd,
        put_gex_usd,
        net_gex_usd,
        abs(net_gex_usd) / nullif(sum(abs(net_gex_usd)) over (partition by model), 0) as share_of_abs_gex,
        call_open_interest,
        put_open_interest
    from per_expiry
)
select * from final
order by model, expiration_ts;
