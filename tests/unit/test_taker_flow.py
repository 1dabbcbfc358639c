"""The taker_flow positioning model and the tape reconciliation, against hand-computed tables and a scalar oracle."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from tests.data_paths import COMBO_TRADES
from transforms.frames.schemas import OPTION_SNAPSHOT, UTC_TS, check
from transforms.frames.trades import trades_frame
from transforms.gex.taker_flow import (
    DEALER_POSITION,
    TAKER_FLOW_EXTRA,
    oi_reconciliation,
    taker_flow_positions,
    tape_coverage,
)

U = UTC
S1 = datetime(2026, 6, 1, 8, tzinfo=U)
S2 = datetime(2026, 6, 1, 9, tzinfo=U)
C60, P60, C70, P50 = "BTC-26JUN26-60000-C", "BTC-26JUN26-60000-P", "BTC-26JUN26-70000-C", "BTC-26JUN26-50000-P"
LISTED = {
    C60: datetime(2026, 5, 1, tzinfo=U),
    P60: datetime(2026, 5, 1, tzinfo=U),
    C70: datetime(2026, 5, 20, tzinfo=U),
    P50: datetime(2026, 5, 1, tzinfo=U),
}
OI = {S1: {C60: 10.0, P60: 8.0, C70: 3.0, P50: 4.0}, S2: {C60: 12.0, P60: 8.0, C70: 3.0, P50: 6.0}}


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def deribit_trade(trade_id, ts, instrument, direction, amount, **extra) -> dict:
    """A trade in the field layout of get_last_trades_by_currency_and_time (see combos/ in shared data)."""
    return {
        "timestamp": ms(ts),
        "price": 0.05,
        "amount": amount,
        "direction": direction,
        "index_price": 70000.0,
        "instrument_name": instrument,
        "trade_seq": 1,
        "mark_price": 0.05,
        "tick_direction": 1,
        "iv": 50.0,
        "contracts": amount,
        "trade_id": trade_id,
        **extra,
    }


def at(hour, minute=0, second=0, millisecond=0) -> datetime:
    return datetime(2026, 6, 1, hour, minute, second, millisecond * 1000, tzinfo=U)


BLOCK = {"block_trade_id": "BLOCK-77", "block_trade_leg_count": 2, "block_rfq_id": 321}
COMBO = {"combo_id": "BTC-STRD-26JUN26-60000", "combo_trade_id": "1010"}
TAPE = [
    deribit_trade("1001", at(7), C60, "buy", 5.0),
    deribit_trade("1002", at(7, 10), C60, "sell", 2.0),
    deribit_trade("1003", at(7, 20), C60, "buy", 4.0, **BLOCK),
    deribit_trade("1004", at(7, 20), P60, "sell", 4.0, **BLOCK),
    deribit_trade("1005", at(7, 30), P60, "buy", 1.0, **COMBO),
    deribit_trade("1006", at(7, 30), C60, "buy", 1.0, **COMBO),
    deribit_trade("1007", at(7, 40), P60, "sell", 3.0, liquidation="T"),
    deribit_trade("1008", at(7, 50), C70, "buy", 6.0),
    deribit_trade("1009", at(8), C60, "sell", 1.0),  # exactly at S1: counts for S1
    deribit_trade("1011", at(8, 0, 0, 1), C60, "buy", 9.0),  # 1 ms after S1: S2 only
    deribit_trade("1012", at(8, 30), C70, "sell", 1.0),
]


def tape(trades=TAPE) -> pl.DataFrame:
    return trades_frame("BTC", trades)


def chain(listed=True) -> pl.DataFrame:
    rows = []
    for snap, book in OI.items():
        for name, oi in book.items():
            rows.append(
                {
                    "currency": "BTC",
                    "snapshot_ts": snap,
                    "instrument_name": name,
                    "option_type": "call" if name.endswith("C") else "put",
                    "strike": float(name.split("-")[2]),
                    "expiration_ts": datetime(2026, 6, 26, 8, tzinfo=U),
                    "contract_size": 1.0,
                    "is_linear": False,
                    "open_interest": oi,
                    "mark_iv": 50.0,
                    "mark_price": 0.05,
                    "bid_price": None,
                    "ask_price": None,
                    "underlying_price": 70000.0,
                    "underlying_index": "BTC-26JUN26",
                    "index_price": 70000.0,
                    "source": "test",
                }
            )
    frame = pl.DataFrame(rows, schema=OPTION_SNAPSHOT)
    if listed:
        listed_ts = pl.col("instrument_name").replace_strict(LISTED, return_dtype=UTC_TS)
        frame = frame.with_columns(listed_ts.alias("listed_ts"))
    return frame


def table(frame: pl.DataFrame, *cols) -> list[tuple]:
    return [tuple(r) for r in frame.select("snapshot_ts", "instrument_name", *cols).iter_rows()]


# ---------------------------------------------------------------- buckets


def test_block_trades_combo_legs_and_liquidations_land_in_their_own_buckets():
    flags = {r["trade_id"]: (r["is_block"], r["is_combo"], r["is_liquidation"]) for r in tape().to_dicts()}
    assert flags == {
        "1001": (False, False, False),
        "1002": (False, False, False),
        "1003": (True, False, False),
        "1004": (True, False, False),
        "1005": (False, True, False),
        "1006": (False, True, False),
        "1007": (False, False, True),
        "1008": (False, False, False),
        "1009": (False, False, False),
        "1011": (False, False, False),
        "1012": (False, False, False),
    }


def test_recorded_combo_legs_are_combo_trades():
    combo = json.loads(COMBO_TRADES.read_text())
    legs = trades_frame("BTC", combo["result"]["trades"][0]["legs"])
    assert legs["is_combo"].to_list() == [True, True] and legs["is_block"].to_list() == [False, False]


# ---------------------------------------------------------------- the model, by hand

# tape_start 2026-05-10: C70 (listed 05-20) has its full tape; the others were listed before it (partial).
#  S1 C60: counted 1001 +5, 1002 -2, 1009 -1 -> net 2, gross 8; bucket 1003 +4, 1006 +1 -> -10 * 2/8 = -2.5
#  S1 P60: counted 1007 -3 (liquidation) -> net -3, gross 3; bucket 1004 -4, 1005 +1 -> -8 * -3/3 = +8
#  S1 C70: 1008 +6, full tape -> clip(-6, -3, 3) = -3 (capped)
#  S1 P50: no trades -> naive: put -> -4
#  S2 C60: + 1011 +9 -> net 11, gross 17 -> -12 * 11/17;  S2 C70: + 1012 -1 -> clip(-5, -3, 3) = -3
EXPECTED = [  # sorted like the output: snapshot, then instrument_name
    # snapshot, instrument, dealer_contracts, method, is_fallback, trades_used, block_trades_excluded,
    # liquidations, net, gross, block_net, is_capped
    (S1, P50, -4.0, "naive_fallback", True, 0, 0, 0, 0.0, 0.0, 0.0, False),
    (S1, C60, -2.5, "tape_partial", False, 3, 2, 0, 2.0, 8.0, 5.0, False),
    (S1, P60, 8.0, "tape_partial", False, 1, 2, 1, -3.0, 3.0, -3.0, False),
    (S1, C70, -3.0, "tape_full", False, 1, 0, 0, 6.0, 6.0, 0.0, True),
    (S2, P50, -6.0, "naive_fallback", True, 0, 0, 0, 0.0, 0.0, 0.0, False),
    (S2, C60, -7.764705882352941, "tape_partial", False, 4, 2, 0, 11.0, 17.0, 5.0, False),
    (S2, P60, 8.0, "tape_partial", False, 1, 2, 1, -3.0, 3.0, -3.0, False),
    (S2, C70, -3.0, "tape_full", False, 2, 0, 0, 5.0, 7.0, 0.0, True),
]
COLUMNS = (
    "dealer_contracts",
    "method",
    "is_fallback",
    "trades_used",
    "block_trades_excluded",
    "liquidations",
    "net_taker_contracts",
    "gross_taker_contracts",
    "block_net_taker_contracts",
    "is_capped",
)


def test_positions_equal_the_hand_computed_table():
    out = taker_flow_positions(chain(), tape(), tape_start=datetime(2026, 5, 10, tzinfo=U))
    got = table(out, *COLUMNS)
    assert [r[:2] for r in got] == [r[:2] for r in EXPECTED]
    for g, e in zip(got, EXPECTED, strict=True):
        assert g[2] == pytest.approx(e[2], abs=1e-12) and g[3:] == e[3:]
    assert out["model"].unique().to_list() == ["taker_flow"] and out["currency"].unique().to_list() == ["BTC"]


def test_the_output_is_the_dealer_position_contract_then_the_extra_columns():
    out = taker_flow_positions(chain(), tape())
    check(out, DEALER_POSITION, "taker_flow")
    assert out.columns == [*DEALER_POSITION, *TAKER_FLOW_EXTRA]
    assert dict(out.schema) == {**DEALER_POSITION, **TAKER_FLOW_EXTRA}


def test_including_blocks_adds_the_bucket_to_the_count():
    out = taker_flow_positions(chain(), tape(), tape_start=datetime(2026, 5, 10, tzinfo=U), include_blocks=True)
    got = {(r[0], r[1]): r[2:] for r in table(out, "dealer_contracts", "trades_used", "block_trades_excluded")}
    # S1 C60: net 2 + 4 + 1 = 7, gross 8 + 4 + 1 = 13; S1 P60: net -3 - 4 + 1 = -6, gross 8
    assert got[(S1, C60)] == (pytest.approx(-10 * 7 / 13), 5, 0)
    assert got[(S1, P60)] == (pytest.approx(6.0), 3, 0)
    assert got[(S1, C70)] == (-3.0, 1, 0)


def test_with_the_tape_since_listing_everywhere_dealers_mirror_cumulative_taker_flow():
    out = taker_flow_positions(chain(), tape(), tape_start=datetime(2026, 4, 1, tzinfo=U))
    got = {(r[0], r[1]): r[2:] for r in table(out, "dealer_contracts", "method")}
    assert got[(S1, C60)] == (-2.0, "tape_full")
    assert got[(S1, P60)] == (3.0, "tape_full")
    assert got[(S2, C60)] == (-11.0, "tape_full")  # |11| <= OI 12: not capped
    assert got[(S2, P50)] == (-6.0, "naive_fallback")


@pytest.mark.parametrize("tape_start, listed", [(None, True), (datetime(2026, 4, 1, tzinfo=U), False)])
def test_an_unknown_listing_time_or_no_tape_start_means_a_partial_tape(tape_start, listed):
    out = taker_flow_positions(chain(listed=listed), tape(), tape_start=tape_start)
    assert set(out.filter(~pl.col("is_fallback"))["method"]) == {"tape_partial"}


def test_a_trade_after_a_snapshot_does_not_change_that_snapshot():
    base = taker_flow_positions(chain(), tape(), tape_start=datetime(2026, 5, 10, tzinfo=U))
    later = [
        deribit_trade("2001", at(8, 0, 0, 1), P50, "buy", 2.0),  # the fallback instrument trades after S1
        deribit_trade("2002", at(8, 0, 0, 1), C70, "sell", 50.0),
    ]
    more = taker_flow_positions(chain(), tape(TAPE + later), tape_start=datetime(2026, 5, 10, tzinfo=U))
    assert more.filter(snapshot_ts=S1).equals(base.filter(snapshot_ts=S1))
    assert not more.filter(snapshot_ts=S2).equals(base.filter(snapshot_ts=S2))
    s2 = more.filter(snapshot_ts=S2, instrument_name=P50).row(0, named=True)
    assert (s2["method"], s2["dealer_contracts"]) == ("tape_partial", -6.0)


def test_trades_on_instruments_outside_the_chain_and_an_empty_tape_are_harmless():
    other = tape(TAPE + [deribit_trade("3001", at(7), "BTC-26JUN26-90000-C", "buy", 1.0)])
    assert taker_flow_positions(chain(), other).equals(taker_flow_positions(chain(), tape()))
    empty = taker_flow_positions(chain(), tape([]))
    assert empty["is_fallback"].all() and empty["dealer_contracts"].to_list() == [
        -4.0,
        10.0,
        -8.0,
        3.0,
        -6.0,
        12.0,
        -8.0,
        3.0,
    ]


# ---------------------------------------------------------------- reconciliation and coverage


def test_oi_reconciliation_flags_open_interest_moves_the_tape_cannot_explain():
    out = oi_reconciliation(chain(), tape())
    got = table(out, "prev_snapshot_ts", "delta_oi", "traded_amount", "trades", "is_violation")
    assert got == [
        (S2, P50, S1, 2.0, 0.0, 0, True),
        (S2, C60, S1, 2.0, 9.0, 1, False),  # 1009 sits exactly at S1: it belongs to the interval before
        (S2, P60, S1, 0.0, 0.0, 0, False),
        (S2, C70, S1, 0.0, 1.0, 1, False),
    ]


def test_tape_coverage_is_the_share_of_open_interest_the_tape_can_account_for():
    out = tape_coverage(chain(), tape())
    rows = out.to_dicts()
    # S1: V = C60 13, P60 8, C70 6, P50 0 -> min with OI: 10 + 8 + 3 + 0 = 21 of 25
    #     taker-only V = C60 8, P60 3, C70 6 -> 8 + 3 + 3 = 14;  traded instruments hold 21 of 25
    # S2: V = C60 22, P60 8, C70 7 -> 12 + 8 + 3 = 23 of 29; taker-only C60 17 -> 12 + 3 + 3 = 18
    assert [
        (r["snapshot_ts"], r["instruments"], r["instruments_traded"], r["open_interest"], r["oi_explained"])
        for r in rows
    ] == [(S1, 4, 3, 25.0, 21.0), (S2, 4, 3, 29.0, 23.0)]
    assert [r["coverage"] for r in rows] == pytest.approx([21 / 25, 23 / 29])
    assert [r["coverage_taker"] for r in rows] == pytest.approx([14 / 25, 18 / 29])
    assert [r["oi_traded_share"] for r in rows] == pytest.approx([21 / 25, 23 / 29])


# ---------------------------------------------------------------- an independent scalar oracle


def reference_positions(chain_rows: list[dict], trades: list[dict], tape_start, include_blocks) -> dict:
    """The model rules applied one option at a time with plain loops."""
    out = {}
    for c in chain_rows:
        net = gross = used = 0
        for t in trades:
            if t["instrument_name"] != c["instrument_name"] or t["ts"] > c["snapshot_ts"]:
                continue
            bucket = t["block_trade_id"] is not None or t["combo_id"] is not None or t["combo_trade_id"] is not None
            if bucket and not include_blocks:
                continue
            net += t["amount"] if t["direction"] == "buy" else -t["amount"]
            gross += t["amount"]
            used += 1
        oi = c["open_interest"]
        full = tape_start is not None and c["listed_ts"] is not None and tape_start <= c["listed_ts"]
        if used == 0:
            value, method = (oi if c["option_type"] == "call" else -oi), "naive_fallback"
        elif full:
            value, method = max(-oi, min(oi, -net)), "tape_full"
        else:
            value, method = -oi * net / gross, "tape_partial"
        out[(c["snapshot_ts"], c["instrument_name"])] = (value, method)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_positions_match_a_scalar_reference_on_random_tapes(seed):
    rng = random.Random(seed)
    names = [f"BTC-26JUN26-{k}-{cp}" for k in (50000, 60000, 70000, 80000) for cp in "CP"]
    snaps = sorted({at(6) + timedelta(minutes=rng.randrange(0, 240)) for _ in range(4)})
    rows = []
    for snap in snaps:
        for name in rng.sample(names, 6):
            rows.append(
                {
                    **chain().row(0, named=True),
                    "snapshot_ts": snap,
                    "instrument_name": name,
                    "option_type": "call" if name.endswith("C") else "put",
                    "open_interest": float(rng.choice((0, 1, 5, 20))),
                    "listed_ts": rng.choice((None, LISTED[C60], LISTED[C70])),
                }
            )
    frame = pl.DataFrame(rows, schema={**OPTION_SNAPSHOT, "listed_ts": UTC_TS})
    trades = []
    for i in range(300):
        extra = rng.choice(({}, {}, {}, BLOCK, COMBO, {"liquidation": "M"}))
        ts = at(5) + timedelta(milliseconds=rng.randrange(0, 5 * 3600 * 1000, 60_000))
        trades.append(
            deribit_trade(
                str(i), ts, rng.choice(names), rng.choice(("buy", "sell")), rng.choice((0.1, 1.0, 3.0)), **extra
            )
        )
    trade_frame = tape(trades)
    for tape_start in (None, datetime(2026, 5, 10, tzinfo=U)):
        for include_blocks in (False, True):
            out = taker_flow_positions(frame, trade_frame, tape_start=tape_start, include_blocks=include_blocks)
            want = reference_positions(frame.to_dicts(), trade_frame.to_dicts(), tape_start, include_blocks)
            got = {
                (r["snapshot_ts"], r["instrument_name"]): (r["dealer_contracts"], r["method"]) for r in out.to_dicts()
            }
            assert got.keys() == want.keys()
            for key, (value, method) in want.items():
                assert got[key][1] == method and got[key][0] == pytest.approx(value, abs=1e-9)
