"""A real HTTP server on 127.0.0.1 that speaks Deribit API v2's wire format from recorded responses.

It serves ``public/<method>`` GETs from ``tests/data/deribit-api/snapshots`` (or bodies a test registers) and
injects faults on demand: HTTP 429 with JSON-RPC 10028, 5xx, JSON-RPC errors, truncated JSON, slow
responses (read timeouts) and dropped connections. It is the only fake in the test suite.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.data_paths import SNAPSHOT_STAMPS as STAMPS
from tests.data_paths import SNAPSHOTS


def envelope_error(code: int, message: str, data=None) -> dict:
    return {
        "jsonrpc": "2.0",
        "error": {"code": code, "message": message, "data": data},
        "usIn": 0,
        "usOut": 0,
        "usDiff": 0,
        "testnet": False,
    }


INVALID_CURRENCY = envelope_error(-32602, "Invalid params", {"reason": "wrong format", "param": "currency"})


class FakeDeribit:
    def __init__(self, stamp: str = STAMPS[1]):
        self.stamp = stamp
        self.faults: dict[str, deque] = defaultdict(deque)  # method -> queue of fault names
        self.bodies: dict[tuple[str, str], bytes] = {}  # (method, key) -> body overriding the recording
        self.trades: dict[str, list[dict]] = {}  # currency -> trades (for get_last_trades_by_currency_and_time)
        # Optional override of the trades pager: params -> the ``result`` object ({trades, has_more}),
        # for serving pathological pages (empty with has_more, the same page whatever the start, ...).
        self.trade_pager = None
        self.requests: list[tuple[str, dict]] = []
        self.faults_served: list[tuple[str, dict, str]] = []  # (method, params, fault) of every faulted request
        self.delay_s = 2.0  # how long a 'timeout' fault stalls
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ------------------------------------------------------------ control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v2"

    def start(self) -> FakeDeribit:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, *faults: str) -> None:
        """Queue faults for the next calls of ``method`` (short name), one per call, then serve normally.

        ``method`` may be ``"<method>:<currency or index name>"`` to hit only that currency's calls.

        Fault names: '429' (HTTP 429 + code 10028), 'rpc10028' (HTTP 200 + code 10028), '500', '502',
        '503', 'invalid_params' (HTTP 400 + code -32602), 'truncated' (half a JSON body),
        'timeout' (stall ``delay_s`` before answering), 'drop' (close the connection), 'html' (a proxy's 502 page).
        ``None`` serves that call normally, to place a fault mid-sequence (e.g. on the third page of a tape).
        """
        self.faults[method].extend(faults)

    def calls(self, method: str) -> int:
        return sum(1 for m, _ in self.requests if m == method)

    # ------------------------------------------------------------ answers
    def recorded(self, method: str, key: str) -> bytes | None:
        if (method, key) in self.bodies:
            return self.bodies[(method, key)]
        path = SNAPSHOTS / f"{method}.{key}.{self.stamp}.json"
        return path.read_bytes() if path.exists() else None

    def answer(self, method: str, params: dict) -> tuple[int, bytes]:
        if method == "get_index_price":
            index = params.get("index_name", "")
            body = self.recorded(method, index) or self.recorded(method, index.split("_")[0].upper())
            return (
                (200, body)
                if body
                else (
                    400,
                    json.dumps(
                        envelope_error(-32602, "Invalid params", {"reason": "wrong format", "param": "index_name"})
                    ).encode(),
                )
            )
        if method == "get_last_trades_by_currency_and_time":
            return 200, self.trades_page(params)
        if method in ("get_instruments", "get_book_summary_by_currency"):
            body = self.recorded(method, params.get("currency", ""))
            return (200, body) if body else (400, json.dumps(INVALID_CURRENCY).encode())
        return 400, json.dumps(envelope_error(-32601, "Method not found")).encode()

    def trades_page(self, params: dict) -> bytes:
        cur = params.get("currency", "")
        if self.trade_pager is not None:
            return json.dumps({"jsonrpc": "2.0", "result": self.trade_pager(params)}).encode()
        if cur not in self.trades:
            # a known currency with nothing recorded has an empty tape, as on Deribit; others are invalid
            known = self.recorded("get_instruments", cur) is not None
            return json.dumps(
                {"jsonrpc": "2.0", "result": {"trades": [], "has_more": False}} if known else INVALID_CURRENCY
            ).encode()
        start, end = int(params["start_timestamp"]), int(params["end_timestamp"])
        count = int(params.get("count", 10))
        rows = sorted(
            (t for t in self.trades[cur] if start <= t["timestamp"] <= end),
            key=lambda t: (t["timestamp"], t["trade_id"]),
        )
        page = rows[:count]
        return json.dumps({"jsonrpc": "2.0", "result": {"trades": page, "has_more": len(rows) > count}}).encode()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                url = urlparse(self.path)
                if not url.path.startswith("/api/v2/public/"):
                    return self._send(404, b'{"error": "not found"}')
                method = url.path.rsplit("/", 1)[-1]
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                fake.requests.append((method, params))
                key = f"{method}:{params.get('currency') or params.get('index_name', '')}"
                queue = fake.faults[key] if fake.faults[key] else fake.faults[method]
                fault = queue.popleft() if queue else None
                if fault is not None:
                    fake.faults_served.append((method, params, fault))
                if fault == "429":
                    return self._send(429, json.dumps(envelope_error(10028, "too_many_requests")).encode())
                if fault == "rpc10028":
                    return self._send(200, json.dumps(envelope_error(10028, "too_many_requests")).encode())
                if fault in ("500", "502", "503"):
                    return self._send(
                        int(fault),
                        json.dumps(envelope_error(13503, "unavailable")).encode()
                        if fault == "503"
                        else b"Internal Server Error",
                    )
                if fault == "html":
                    return self._send(502, b"<html><body>502 Bad Gateway</body></html>")
                if fault == "invalid_params":
                    return self._send(400, json.dumps(INVALID_CURRENCY).encode())
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return None
                status, body = fake.answer(method, params)
                if fault == "truncated":
                    body = body[: max(1, len(body) // 2)]
                if fault == "timeout":
                    time.sleep(fake.delay_s)
                return self._send(status, body)

            def _send(self, status, body):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


SNAPSHOT_MS = 1785497602630  # 2026-07-31T11:33:22.630Z, the recorded book summaries' creation_timestamp
# A hand-made BTC tape around the recorded snapshot (serve it as fake.trades['BTC']):
TAPE = [
    # a taker buys 40 of the 60000 put, sells 10 back; a block trade and a liquidation on the 70000 call
    {
        "trade_id": "900001",
        "trade_seq": 1,
        "timestamp": SNAPSHOT_MS - 3_600_000,
        "instrument_name": "BTC-14AUG26-60000-P",
        "direction": "buy",
        "amount": 40.0,
        "price": 0.02,
        "iv": 50.0,
        "index_price": 63000.0,
        "tick_direction": 0,
    },
    {
        "trade_id": "900002",
        "trade_seq": 2,
        "timestamp": SNAPSHOT_MS - 1_800_000,
        "instrument_name": "BTC-14AUG26-60000-P",
        "direction": "sell",
        "amount": 10.0,
        "price": 0.02,
        "iv": 50.0,
        "index_price": 63000.0,
        "tick_direction": 1,
    },
    {
        "trade_id": "900003",
        "trade_seq": 1,
        "timestamp": SNAPSHOT_MS - 900_000,
        "instrument_name": "BTC-14AUG26-70000-C",
        "direction": "sell",
        "amount": 25.0,
        "price": 0.01,
        "iv": 48.0,
        "index_price": 63000.0,
        "tick_direction": 2,
        "block_trade_id": "BLOCK-1",
        "block_trade_leg_count": 2,
    },
    {
        "trade_id": "900004",
        "trade_seq": 2,
        "timestamp": SNAPSHOT_MS - 600_000,
        "instrument_name": "BTC-14AUG26-70000-C",
        "direction": "buy",
        "amount": 5.0,
        "price": 0.01,
        "iv": 48.0,
        "index_price": 63000.0,
        "tick_direction": 0,
        "liquidation": "T",
    },
    {
        "trade_id": "900005",
        "trade_seq": 3,
        "timestamp": SNAPSHOT_MS + 60_000,
        "instrument_name": "BTC-14AUG26-70000-C",
        "direction": "buy",
        "amount": 500.0,
        "price": 0.01,
        "iv": 48.0,
        "index_price": 63000.0,
        "tick_direction": 0,
    },
]


def install_usdc_chain(fake) -> None:
    """A small USDC-settled chain at the recorded snapshot's time (SNAPSHOT_MS), all listed 2026-07-25 17:20 UTC:
    SOL_USDC 150-C, 150-P, 162d5-C, 162d5-P (contract size 1, OI 10, 11, 12, 13) and an XRP_USDC 2d5-C
    (contract size 1000, OI 14), with the sol_usdc and xrp_usdc index prices."""
    expiry = 1786694400000  # 2026-08-14 08:00 UTC
    instruments = [
        {
            "instrument_name": f"SOL_USDC-14AUG26-{s}-{cp}",
            "kind": "option",
            "option_type": t,
            "strike": k,
            "expiration_timestamp": expiry,
            "contract_size": 1.0,
            "base_currency": "SOL",
            "quote_currency": "USDC",
            "settlement_currency": "USDC",
            "counter_currency": "USDC",
            "instrument_type": "linear",
            "price_index": "sol_usdc",
            "settlement_period": "week",
            "is_active": True,
            "creation_timestamp": 1785000000000,
        }
        for s, k in (("150", 150.0), ("162d5", 162.5))
        for cp, t in (("C", "call"), ("P", "put"))
    ] + [
        {
            "instrument_name": "XRP_USDC-14AUG26-2d5-C",
            "kind": "option",
            "option_type": "call",
            "strike": 2.5,
            "expiration_timestamp": expiry,
            "contract_size": 1000.0,
            "base_currency": "XRP",
            "quote_currency": "USDC",
            "settlement_currency": "USDC",
            "counter_currency": "USDC",
            "instrument_type": "linear",
            "price_index": "xrp_usdc",
            "settlement_period": "week",
            "is_active": True,
            "creation_timestamp": 1785000000000,
        }
    ]
    book = [
        {
            "instrument_name": i["instrument_name"],
            "base_currency": i["base_currency"],
            "quote_currency": "USDC",
            "open_interest": 10.0 + n,
            "mark_iv": 70.0,
            "mark_price": 5.0,
            "underlying_price": 2.6 if "XRP" in i["instrument_name"] else 160.0,
            "underlying_index": "index_price",
            "bid_price": None,
            "ask_price": 6.0,
            "creation_timestamp": SNAPSHOT_MS,
        }
        for n, i in enumerate(instruments)
    ]
    fake.bodies[("get_instruments", "USDC")] = json.dumps({"jsonrpc": "2.0", "result": instruments}).encode()
    fake.bodies[("get_book_summary_by_currency", "USDC")] = json.dumps({"jsonrpc": "2.0", "result": book}).encode()
    for idx, px in (("sol_usdc", 158.0), ("xrp_usdc", 2.55)):
        fake.bodies[("get_index_price", idx)] = json.dumps({"jsonrpc": "2.0", "result": {"index_price": px}}).encode()
