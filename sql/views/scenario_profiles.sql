-- one row per (currency, snapshot_ts, model, scenario, price_level): the dealer book under a what-if scenario
-- scenarios: rolloff_next / rolloff_monthly (the next / next monthly expiry settled, the rest re-priced then),
-- iv_minus_10 .. iv_plus_10 (parallel IV shifts in vol points), spot_vol (IV follows the smile, sticky-moneyness),
-- time_24h (24 h later, no price move). horizon_ts = the time the book is re-priced at. dealer_gex_usd in USD per 1 %
-- move; dealer_delta and flows in coins (> 0 = dealers buy) from (spot, snapshot_ts) to the scenario at price_level:
-- hedge_flow_coins = gamma_flow_coins + vanna_flow_coins + charm_flow_coins; hedge_flow_usd = coins x price_level;
-- zero_gamma (USD) of the scenario book, repeated on each of its rows (NULL when none within +-25 %).
create or replace view scenario_profiles as
with source as (
    select * from read_parquet(gexflow_lake() || '/scenario_profiles/**/*.parquet', union_by_name = true)
),
final as (
    select
        currency, snapshot_ts, model, scenario, horizon_ts, price_level, pct_from_spot,
        dealer_gex_usd, dealer_delta, hedge_flow_coins, gamma_flow_coins, vanna_flow_coins, charm_flow_coins,
        hedge_flow_usd, zero_gamma
    from source
)
select * from final;
