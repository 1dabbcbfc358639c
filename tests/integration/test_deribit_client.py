"""The client's pure parts with a fake clock and recorded sleeps: backoff, token buckets, error classes."""

from __future__ import annotations

import json

import pytest

from pipelines.sources.deribit import (
    DeribitClient,
    DeribitError,
    TokenBucket,
    backoff_delay,
    encode_params,
    parse_body,
)
from tests.data_paths import RATE_LIMIT_ERROR, SNAPSHOTS


class FakeClock:
    def __init__(self):
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def test_backoff_grows_exponentially_is_capped_and_fully_jittered():
    assert [backoff_delay(a, 0.5, 30.0, 0.999999) for a in range(8)] == pytest.approx(
        [0.5, 1, 2, 4, 8, 16, 30, 30], rel=1e-5
    )
    assert backoff_delay(5, 0.5, 30.0, 0.0) == 0.0
    assert backoff_delay(2, 0.5, 30.0, 0.5) == pytest.approx(1.0)


def test_a_token_bucket_allows_its_burst_then_paces_at_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=20, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        assert bucket.acquire() == 0.0
    for _ in range(10):
        bucket.acquire()
    assert clock.t == pytest.approx(1.0)  # 10 more requests at 10/s after the burst
    assert all(s == pytest.approx(0.1) for s in clock.sleeps)


def test_the_instruments_bucket_allows_five_then_one_per_ten_seconds():
    clock = FakeClock()
    bucket = TokenBucket(rate=0.1, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        bucket.acquire()
    assert clock.t == pytest.approx(10.0)


def test_booleans_are_sent_as_true_and_false_and_none_is_dropped():
    assert encode_params({"expired": False, "x": True, "n": 3, "skip": None}) == {
        "expired": "false",
        "x": "true",
        "n": 3,
    }


def test_the_recorded_rate_limit_error_is_transient():
    body = RATE_LIMIT_ERROR.read_bytes()
    with pytest.raises(DeribitError) as err:
        parse_body("public/get_book_summary_by_currency", body, 429)
    assert err.value.code == 10028 and err.value.transient


@pytest.mark.parametrize("code", [-32602, -32601, 11050, 13020])
def test_permanent_codes_are_never_transient_whatever_the_http_status(code):
    body = json.dumps(
        {"jsonrpc": "2.0", "error": {"code": code, "message": "nope", "data": {"reason": "r", "param": "p"}}}
    )
    with pytest.raises(DeribitError) as err:
        parse_body("public/x", body.encode(), 503)
    assert not err.value.transient and err.value.reason == "r" and err.value.param == "p"


@pytest.mark.parametrize("code", [10028, 10040, 10047, 10066, 11051, 13028, 13503])
def test_transient_codes_are_retried_even_with_http_200(code):
    body = json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": "busy"}})
    with pytest.raises(DeribitError) as err:
        parse_body("public/x", body.encode(), 200)
    assert err.value.transient


def test_a_json_body_is_parsed_whatever_the_http_status():
    assert parse_body("public/x", b'{"jsonrpc": "2.0", "result": {"a": 1}}', 500) == {"a": 1}


class ScriptedTransport:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = 0

    def get(self, method, params):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(transport, clock, **kw):
    return DeribitClient(
        transport,
        bucket=TokenBucket(100, 100, clock=clock, sleep=clock.sleep),
        instruments_bucket=TokenBucket(0.1, 5, clock=clock, sleep=clock.sleep),
        sleep=clock.sleep,
        rand=lambda: 1.0,
        backoff_base=0.5,
        **kw,
    )


def test_the_client_backs_off_then_succeeds_and_gives_up_after_max_retries():
    clock = FakeClock()
    busy = (429, json.dumps({"error": {"code": 10028, "message": "too_many_requests"}}).encode())
    ok = (200, b'{"result": [1]}')
    transport = ScriptedTransport([busy, busy, ok])
    result, raw = make_client(transport, clock, max_retries=5).call("get_index_price", {"index_name": "btc_usd"})
    assert result == [1] and raw.method == "public/get_index_price" and clock.sleeps == [0.5, 1.0]
    clock2 = FakeClock()
    transport = ScriptedTransport([busy] * 3)
    with pytest.raises(DeribitError, match="gave up after 3 attempts"):
        make_client(transport, clock2, max_retries=2).call("get_index_price", {})
    assert transport.calls == 3


def test_instruments_are_cached_so_a_second_call_sends_nothing():
    clock = FakeClock()
    transport = ScriptedTransport([(200, b'{"result": []}')])
    client = make_client(transport, clock)
    client.get_instruments("BTC")
    client.get_instruments("BTC")
    assert transport.calls == 1


def test_every_malformed_body_goes_to_the_hook_before_its_retry_and_nothing_else_does():
    clock = FakeClock()
    kept = []
    busy = (429, json.dumps({"error": {"code": 10028, "message": "too_many_requests"}}).encode())
    cut, html, ok = (200, b'{"result": [1'), (502, b"<html>502 Bad Gateway</html>"), (200, b'{"result": [1]}')
    transport = ScriptedTransport([cut, busy, html, ok])
    client = make_client(
        transport,
        clock,
        max_retries=5,
        on_malformed=lambda response, attempt: kept.append(
            (attempt, response.http_status, response.body, response.params, len(clock.sleeps))
        ),
    )
    result, raw = client.call("get_book_summary_by_currency", {"currency": "BTC"})
    assert result == [1] and raw.body == ok[1]
    # attempts 1 and 3 were malformed, each handed over before the sleep that precedes its retry; the 429 was a
    # well-formed JSON-RPC error and the good body is returned, not handed over
    assert kept == [(1, 200, cut[1], {"currency": "BTC"}, 0), (3, 502, html[1], {"currency": "BTC"}, 2)]


def test_a_bad_replay_file_is_a_source_error_naming_it_and_never_retried(tmp_path):
    from pipelines.errors import SourceError
    from pipelines.sources.replay import ReplayDirectory, ReplayTransport
    from tests.fake_deribit import STAMPS, envelope_error

    stamp = STAMPS[1]
    book = tmp_path / f"get_book_summary_by_currency.BTC.{stamp}.json"
    recorded = (SNAPSHOTS / book.name).read_bytes()
    book.write_bytes(recorded[: len(recorded) // 2])
    index = tmp_path / f"get_index_price.BTC.{stamp}.json"
    index.write_text(json.dumps(envelope_error(10028, "too_many_requests")))  # transient on the wire, not on disk
    transport = ReplayTransport(ReplayDirectory.open(tmp_path), stamp)
    clock = FakeClock()
    client = make_client(transport, clock, max_retries=3, parse=transport.parse)
    with pytest.raises(SourceError) as err:
        client.get_book_summary("BTC")
    assert (
        str(err.value)
        == f"replay file {book} is truncated or not valid JSON ({book.stat().st_size} bytes); it cannot be replayed"
    )
    with pytest.raises(SourceError, match=r"get_index_price\.BTC\..* records a failed call \(code 10028"):
        client.get_index_price("btc_usd")
    assert clock.sleeps == []  # the client's backoff never ran
    assert not isinstance(err.value, DeribitError)  # so the flows' retry condition (transient DeribitError) is False
