-- one row per (model, horizon, price_level): the $top_n price levels of the latest flow forecast of $currency that
-- contribute most to the expected absolute hedge flow (probability_weight * |hedge_flow_usd|), per model and horizon
-- price_level in USD; pct_move in percent; hedge_flow_coins (> 0 = dealers BUY) and hedge_flow_usd at that level;
-- weighted_abs_flow_usd = probability_weight * |hedge_flow_usd|; rank 1 = largest.
-- Parameters: $currency (e.g. 'BTC'), $top_n (e.g. 5).
with forecast as (
    select * from flow_forecast
    where currency = $currency
),
latest as (
    select *
    from forecast
    qualify forecast_date = max(forecast_date) over ()
),
ranked as (
    select
        *,
        probability_weight * abs(hedge_flow_usd) as weighted_abs_flow_usd,
        row_number() over (
            partition by model, horizon
            order by probability_weight * abs(hedge_flow_usd) desc, price_level
        ) as rank
    from latest
),
final as (
    select
        currency,
        forecast_date,
        model,
        horizon,
        horizon_hours,
        rank,
        price_level,
        pct_move,
        hedge_flow_coins,
        hedge_flow_usd,
        probability_weight,
        weighted_abs_flow_usd
    from ranked
    where rank <= cast($top_n as integer)
)
select * from final
order by model, horizon_hours, rank;
