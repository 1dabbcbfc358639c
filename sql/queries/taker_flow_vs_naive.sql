-- one row per snapshot_ts: the taker_flow model (dealer book from the trade tape) against the naive convention
-- for $currency, at every snapshot where both exist. total_gex_usd in USD per 1 % move (> 0 = dealers long gamma);
-- zero_gamma in USD (NULL when none in range); *_diff = taker_flow minus naive; is_same_gamma_sign = both models put
-- dealers on the same side of gamma at spot.
-- Parameters: $currency (e.g. 'BTC').
with levels as (
    select * from key_levels
    where currency = $currency
),
naive as (
    select snapshot_ts, spot, total_gex_usd, zero_gamma
    from levels
    where model = 'naive'
),
taker as (
    select snapshot_ts, total_gex_usd, zero_gamma
    from levels
    where model = 'taker_flow'
),
final as (
    select
        naive.snapshot_ts,
        naive.spot,
        naive.total_gex_usd as naive_total_gex_usd,
        taker.total_gex_usd as taker_flow_total_gex_usd,
        taker.total_gex_usd - naive.total_gex_usd as total_gex_diff_usd,
        naive.zero_gamma as naive_zero_gamma,
        taker.zero_gamma as taker_flow_zero_gamma,
        taker.zero_gamma - naive.zero_gamma as zero_gamma_diff,
        sign(taker.total_gex_usd) = sign(naive.total_gex_usd) as is_same_gamma_sign
    from naive
    inner join taker using (snapshot_ts)
)
select * from final
order by snapshot_ts;
