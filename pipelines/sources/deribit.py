"""A small client for Deribit's public JSON-RPC-over-HTTP API v2.

``GET <api_url>/public/<method>?params``; the JSON body is parsed whatever the HTTP status and an
``error`` member is a failure. Requests pass a token bucket (and ``get_instruments`` a second, slower
one); transient failures are retried with exponential backoff and full jitter, permanent ones never.
The backoff and bucket arithmetic are pure functions of an injected clock so tests need no sleeping.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.errors import GexflowError

# DESIGN.md section 2.
TRANSIENT_CODES = frozenset({10028, 10040, 10047, 10066, 11051, 13028, 13503})
PERMANENT_CODES = frozenset({-32602, -32601, 11050, 13020})
INSTRUMENTS_METHOD = "public/get_instruments"


class DeribitError(GexflowError):
    """A failed call. ``code`` is Deribit's JSON-RPC code (None for transport failures).

    ``malformed``: a body arrived but is not a JSON-RPC response (truncated or cut-off JSON, a proxy's
    HTML page, ...); the client hands such bodies to its ``on_malformed`` hook so they can be kept.
    """

    def __init__(
        self,
        method,
        message,
        *,
        code=None,
        reason=None,
        param=None,
        http_status=None,
        transient=False,
        malformed=False,
    ):
        self.method, self.message, self.code = method, message, code
        self.reason, self.param, self.http_status, self.transient = reason, param, http_status, transient
        self.malformed = malformed
        super().__init__(self.line())

    def line(self) -> str:
        parts = [f"deribit {self.method} failed"]
        if self.code is not None:
            parts.append(f"code {self.code} {self.message}")
        else:
            parts.append(self.message)
        if self.reason:
            parts.append(f"reason: {self.reason}")
        if self.param:
            parts.append(f"param: {self.param}")
        if self.http_status and self.http_status != 200:
            parts.append(f"HTTP {self.http_status}")
        return ": ".join(parts[:2]) + "".join(f" ({p})" for p in parts[2:])


@dataclass(frozen=True)
class RawResponse:
    """One response exactly as received, for landing under raw/."""

    method: str  # e.g. 'public/get_book_summary_by_currency'
    params: dict
    body: bytes
    http_status: int
    received_at: datetime  # UTC

    @property
    def short_method(self) -> str:
        return self.method.split("/", 1)[-1]


def encode_params(params: dict) -> dict:
    """Query-string values as Deribit expects them: booleans as ``true``/``false``, None dropped."""
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Full-jitter exponential backoff: ``rand * min(cap, base * 2**attempt)``, ``rand`` in [0, 1)."""
    return rand * min(cap, base * (2.0**attempt))


def parse_body(method: str, body: bytes, http_status: int):
    """Return the ``result`` of a JSON-RPC body or raise a classified :class:`DeribitError`."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        transient = http_status == 429 or http_status >= 500 or http_status == 200
        snippet = body[:60].decode("utf-8", "replace").replace("\n", " ")
        raise DeribitError(
            method,
            f"malformed JSON body ({len(body)} bytes: {snippet!r})",
            http_status=http_status,
            transient=transient,
            malformed=True,
        ) from None
    if not isinstance(doc, dict):
        raise DeribitError(method, "JSON body is not an object", http_status=http_status, malformed=True)
    error = doc.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        data = (error.get("data") if isinstance(error, dict) else None) or {}
        data = data if isinstance(data, dict) else {"reason": str(data)}
        transient = code in TRANSIENT_CODES or (
            code not in PERMANENT_CODES and (http_status == 429 or http_status >= 500)
        )
        raise DeribitError(
            method,
            str(error.get("message", "error") if isinstance(error, dict) else error),
            code=code,
            reason=data.get("reason"),
            param=data.get("param"),
            http_status=http_status,
            transient=transient,
        )
    if "result" not in doc:
        transient = http_status == 429 or http_status >= 500
        raise DeribitError(
            method, "body has neither result nor error", http_status=http_status, transient=transient, malformed=True
        )
    return doc["result"]


def index_names(currency: str, instruments: list) -> list[str]:
    """The index names a currency's options are priced on (``btc_usd``; ``sol_usdc``, ... for USDC), sorted."""
    default = f"{currency.lower()}_usd"
    names = {(i.get("price_index") if isinstance(i, dict) else None) or default for i in instruments}
    return sorted(names) if names else [default]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked. ``acquire`` blocks until a token is free."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate, self.burst, self.clock, self.sleep = rate, float(burst), clock, sleep
        self.tokens, self.stamp = float(burst), clock()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Seconds until a token is available (0 if one is now); refills first."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        # tolerance: after sleeping the computed delay, float rounding can leave 0.999...; never spin on it
        return 0.0 if self.tokens >= 1.0 - 1e-9 else (1.0 - self.tokens) / self.rate

    def acquire(self) -> float:
        """Take one token, sleeping as needed; returns the seconds slept."""
        slept = 0.0
        with self._lock:
            while (delay := self.wait_time()) > 0:
                self.sleep(delay)
                slept += delay
            self.tokens -= 1.0
        return slept


class HttpTransport:
    """GET over a pooled ``requests.Session`` with connect/read timeouts. ``requests`` is imported here, not with
    the module: a run from the bundled sample or a replay never talks HTTP (~0.15 s of its start)."""

    def __init__(self, api_url: str, connect_timeout: float, read_timeout: float, session=None):
        import requests

        self.api_url = api_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "gexflow/0.1 (+https://github.com/gexflow)")

    def get(self, method: str, params: dict) -> tuple[int, bytes]:
        import requests

        try:
            resp = self.session.get(f"{self.api_url}/{method}", params=encode_params(params), timeout=self.timeout)
            return resp.status_code, resp.content
        except requests.exceptions.Timeout:
            raise DeribitError(method, f"timed out after {self.timeout[1]:g} s", transient=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise DeribitError(
                method, f"cannot connect to {self.api_url} ({_root_cause(exc)})", transient=True
            ) from None
        except requests.exceptions.RequestException as exc:
            raise DeribitError(method, f"request failed ({type(exc).__name__})") from None


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc).split(": ")[-1] or type(exc).__name__
    return text.strip("()'\" ")[:120]


class DeribitClient:
    """Calls public methods with limiting, retries and an instruments cache.

    Successful calls return their :class:`RawResponse` so the caller can land raw bodies as they arrive.
    ``on_malformed(response, attempt)`` is called with every body that arrived but could not be used
    (a :class:`DeribitError` with ``malformed``), each attempt, before any retry: those bytes are kept too.
    ``parse`` turns (method, body, HTTP status) into the result or raises; a replay transport supplies
    its own so that a bad file is reported by name and never retried.
    """

    def __init__(
        self,
        transport,
        *,
        bucket: TokenBucket,
        instruments_bucket: TokenBucket,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        instruments_ttl_s: float = 3600.0,
        on_retry: Callable[[DeribitError, int, float], None] | None = None,
        on_malformed: Callable[[RawResponse, int], None] | None = None,
        parse: Callable[[str, bytes, int], object] = parse_body,
    ):
        self.transport, self.bucket, self.instruments_bucket = transport, bucket, instruments_bucket
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.sleep, self.rand, self.now, self.on_retry = sleep, rand, now, on_retry
        self.on_malformed, self.parse = on_malformed, parse
        self.instruments_ttl_s = instruments_ttl_s
        self._instruments: dict[tuple, tuple[float, object, RawResponse]] = {}
        self.requests_sent = 0

    @classmethod
    def from_settings(cls, settings, **kwargs) -> DeribitClient:
        transport = HttpTransport(settings.api_url, settings.connect_timeout_s, settings.read_timeout_s)
        return cls(
            transport,
            bucket=TokenBucket(settings.rate_per_s, settings.burst),
            instruments_bucket=TokenBucket(settings.instruments_rate_per_s, settings.instruments_burst),
            max_retries=settings.max_retries,
            backoff_base=settings.backoff_base_s,
            backoff_cap=settings.backoff_cap_s,
            **kwargs,
        )

    def call(self, method: str, params: dict) -> tuple[object, RawResponse]:
        """One public method: (result, raw response). Raises DeribitError after retries run out."""
        method = method if method.startswith("public/") else f"public/{method}"
        bucket = self.instruments_bucket if method == INSTRUMENTS_METHOD else self.bucket
        attempt = 0
        while True:
            bucket.acquire()
            try:
                self.requests_sent += 1
                status, body = self.transport.get(method, params)
                try:
                    result = self.parse(method, body, status)
                except DeribitError as err:
                    if err.malformed and body and self.on_malformed is not None:
                        self.on_malformed(RawResponse(method, dict(params), body, status, self.now()), attempt + 1)
                    raise
                return result, RawResponse(method, dict(params), body, status, self.now())
            except DeribitError as err:
                if not err.transient or attempt >= self.max_retries:
                    if err.transient and attempt:
                        err.message += f", gave up after {attempt + 1} attempts"
                        err.args = (err.line(),)
                    raise
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, self.rand())
                if self.on_retry:
                    self.on_retry(err, attempt + 1, delay)
                self.sleep(delay)
                attempt += 1

    def get_instruments(self, currency: str, kind: str = "option", expired: bool = False):
        """``public/get_instruments``, cached for ``instruments_ttl_s`` (it has its own, tight rate limit)."""
        key = (currency, kind, expired)
        cached = self._instruments.get(key)
        if cached and time.monotonic() - cached[0] < self.instruments_ttl_s:
            return cached[1], cached[2]
        result, raw = self.call(INSTRUMENTS_METHOD, {"currency": currency, "kind": kind, "expired": expired})
        self._instruments[key] = (time.monotonic(), result, raw)
        return result, raw

    def get_book_summary(self, currency: str, kind: str = "option"):
        return self.call("public/get_book_summary_by_currency", {"currency": currency, "kind": kind})

    def get_index_price(self, index_name: str):
        return self.call("public/get_index_price", {"index_name": index_name})

    def get_trades(self, currency: str, start_ms: int, end_ms: int, count: int = 1000, kind: str = "option"):
        return self.call(
            "public/get_last_trades_by_currency_and_time",
            {
                "currency": currency,
                "kind": kind,
                "start_timestamp": start_ms,
                "end_timestamp": end_ms,
                "count": count,
                "sorting": "asc",
            },
        )
