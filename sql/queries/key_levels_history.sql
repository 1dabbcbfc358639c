-- one row per snapshot_ts: the key_levels_history view for one $currency and $model between $since and $until
-- (UTC timestamps, inclusive); units as in the view: USD levels, total_gex_usd in USD per 1 % move.
-- Parameters: $currency (e.g. 'BTC'), $model (e.g. 'naive'), $since, $until (e.g. '2026-01-01', '2026-08-01').
with history as (
    select * from key_levels_history
    where currency = $currency
      and model = $model
      and snapshot_ts >= cast($since as timestamptz)
      and snapshot_ts <= cast($until as timestamptz)
),
final as (
    select * from history
)
select * from final
order by snapshot_ts;
