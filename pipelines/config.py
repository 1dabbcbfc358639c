"""Settings, read once: command-line flags over ``GEXFLOW_*`` environment variables over defaults.

Nothing below this module reads ``os.environ``; it receives a frozen :class:`Settings`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from transforms.errors import GexflowError

DEFAULT_API_URL = "https://www.deribit.com/api/v2"
DEFAULT_CURRENCIES = ("BTC", "ETH")
# Deribit option settlement currencies (USDC carries the linear SOL/XRP/... options).
KNOWN_CURRENCIES = ("BTC", "ETH", "USDC", "USDT")
# Version of the analytics code, recorded with every computed snapshot (pipelines/store/inputs.py): bump it when
# a change of transforms/ or pipelines/jobs/compute.py changes what is stored, and every computed snapshot counts
# as stale (run/backfill recompute it). 2: the hedge_ladder and hedge_ladder_volume tables (issue 15).
ANALYTICS_VERSION = 2


class ConfigError(GexflowError, ValueError):
    """A setting is invalid; the message is one line meant for the user."""


def _setting(default, doc: str, env: str | None = None, parse=None, flag: str | None = None):
    """One setting, declared once: its type is the field's annotation, ``default`` its default, ``env`` the
    ``GEXFLOW_*`` variable that sets it, ``doc`` the one line the settings table shows, ``parse(name, value)``
    how a flag or env text becomes its value (a one-line ConfigError when it cannot)."""
    return field(default=default, metadata={"doc": doc, "env": env, "parse": parse, "flag": flag})


def _data_dir(name, value) -> Path:
    if not str(value).strip():
        raise ConfigError("--data-dir must not be empty (use . for the current directory)")
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--data-dir {value} is a file, not a directory")
    return path


def _api_url(name, value) -> str:
    if not re.match(r"^https?://[^\s/]+", str(value)):
        raise ConfigError(f"--api-url must be an http(s) URL, got {value!r}")
    return str(value).rstrip("/")


def _engine(name, value) -> str:
    if value not in ("auto", "direct", "prefect"):
        raise ConfigError(f"--engine must be auto, direct or prefect, got {value!r}")
    return value


def _dask_address(name, value) -> str:
    if not re.match(r"^(tcp|tls|ucx|ws|wss|inproc)://[^\s/]+", str(value)):
        raise ConfigError(f"--dask-address must be a Dask scheduler address like tcp://host:8786, got {value!r}")
    return str(value)


def _count(name, value) -> int:
    return _number(name, value, int, minimum=0)


def _seconds(name, value) -> float:
    return _number(name, value, float, minimum=0)


@dataclass(frozen=True)
class Settings:
    """Every setting of gexflow, each declared once (type, default, env variable, doc); ``docs/cli.md``'s
    settings table is generated from these declarations (:func:`settings_table`, checked by a test)."""

    data_dir: Path = _setting(
        Path("data"), "where raw/, lake/, warehouse.duckdb live", "GEXFLOW_DATA_DIR", _data_dir, "--data-dir"
    )
    api_url: str = _setting(
        DEFAULT_API_URL,
        "Deribit API v2 base URL (testnet, history.deribit.com, a local fake)",
        "GEXFLOW_DERIBIT_URL",
        _api_url,
        "--api-url",
    )
    currencies: tuple[str, ...] = _setting(
        DEFAULT_CURRENCIES,
        "comma-separated; BTC, ETH, USDC (linear SOL/XRP/... options, stored under their base coin)",
        "GEXFLOW_CURRENCIES",
        lambda name, value: parse_currencies(value),
        "--currency",
    )
    source: str = _setting(
        "live",
        "live, sample (bundled) or replay:DIR (recorded responses)",
        "GEXFLOW_SOURCE",
        lambda name, value: parse_source(str(value)),
        "--source",
    )
    # Client limits: Deribit's credit bucket allows ~20 req/s sustained; we stay well under.
    rate_per_s: float = _setting(10.0, "token bucket: requests per second to Deribit", "GEXFLOW_RATE_PER_S", _seconds)
    burst: int = _setting(20, "token bucket: burst size", "GEXFLOW_BURST", _count)
    instruments_rate_per_s: float = _setting(0.1, "get_instruments' own limit: 1 per 10 s")
    instruments_burst: int = _setting(5, "get_instruments' own burst")
    connect_timeout_s: float = _setting(5.0, "HTTP connect timeout (s)", "GEXFLOW_CONNECT_TIMEOUT_S", _seconds)
    read_timeout_s: float = _setting(15.0, "HTTP read timeout (s)", "GEXFLOW_READ_TIMEOUT_S", _seconds)
    max_retries: int = _setting(5, "retries of a transient failure (429, 5xx, timeouts)", "GEXFLOW_MAX_RETRIES", _count)
    backoff_base_s: float = _setting(
        0.5, "backoff base (s): full jitter of min(cap, base * 2^n)", "GEXFLOW_BACKOFF_BASE_S", _seconds
    )
    backoff_cap_s: float = _setting(30.0, "backoff cap (s)", "GEXFLOW_BACKOFF_CAP_S", _seconds)
    engine: str = _setting(
        "auto",
        "auto: a Prefect flow run when PREFECT_API_URL is set, in-process otherwise; direct; prefect",
        "GEXFLOW_ENGINE",
        _engine,
        "--engine",
    )
    prefect_api_url: str | None = _setting(None, "a Prefect server's API (read from PREFECT_API_URL, Prefect's own)")
    max_snapshot_age_s: float = _setting(
        900.0,
        "a live snapshot older than this fails validation; 0 turns the check off",
        "GEXFLOW_MAX_SNAPSHOT_AGE_S",
        _seconds,
    )
    lock_wait_s: float = _setting(
        0.0,
        "seconds a writer waits for another; 0 = fail at once (the CLI); flow runs wait 300",
        "GEXFLOW_LOCK_WAIT_S",
        _seconds,
    )
    include_blocks: bool = _setting(
        False,
        "taker_flow counts block trades and combo legs in every compute (run, flows, re-computes)",
        "GEXFLOW_INCLUDE_BLOCKS",
        lambda name, value: _flag(name, value),
    )
    # issue 15: storing the what-if tables more than doubles compute's cost per snapshot (benchmarks/RESULTS.md)
    what_ifs: bool = _setting(
        False,
        "every compute (run, backfill, flows, re-computes) also stores scenario_profiles, hedge_ladder and "
        "hedge_ladder_volume (`compute --what-ifs` once); off, `profile --scenario` and `ladder` price them on request",
        "GEXFLOW_WHAT_IFS",
        lambda name, value: _flag(name, value),
    )
    dask_address: str | None = _setting(
        None,
        "an existing Dask scheduler (tcp://host:8786): backfill days fan out over its workers (gexflow[dask])",
        "GEXFLOW_DASK_ADDRESS",
        _dask_address,
        "--dask-address",
    )
    # pipelines/jobs/threads.py: with a core busy elsewhere, 2 threads can be far slower than 1 (benchmarks/RESULTS.md)
    kernel_threads: int = _setting(
        0,
        "numba threads of the profile kernel; 0 = the cores other processes leave idle",
        "GEXFLOW_KERNEL_THREADS",
        _count,
    )
    extra: dict = field(default_factory=dict)

    @property
    def replay_dir(self) -> Path | None:
        return Path(self.source.split(":", 1)[1]) if self.source.startswith("replay:") else None

    @property
    def uses_prefect(self) -> bool:
        """Run as a Prefect flow run: asked for, or 'auto' with a Prefect server configured (PREFECT_API_URL)."""
        return self.engine == "prefect" or (self.engine == "auto" and bool(self.prefect_api_url))

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


def declared() -> list:
    """The declared settings (dataclass fields with a doc), in declaration order."""
    return [f for f in fields(Settings) if "doc" in f.metadata]


_ENV = {f.name: f.metadata["env"] for f in declared() if f.metadata["env"]}


def settings_table() -> str:
    """The Markdown table of every setting a user can set: flag, env variable, default, meaning."""

    def shown(value) -> str:
        if isinstance(value, tuple):
            return ", ".join(value)
        return "unset" if value is None else str(value)

    rows = ["| setting | flag | env | default | meaning |", "|---|---|---|---|---|"]
    for f in declared():
        if not f.metadata["env"]:
            continue
        flag = f"`{f.metadata['flag']}`" if f.metadata["flag"] else ""
        rows.append(f"| `{f.name}` | {flag} | `{f.metadata['env']}` | `{shown(f.default)}` | {f.metadata['doc']} |")
    return "\n".join(rows)


def debug_enabled(env: dict | None = None) -> bool:
    """GEXFLOW_DEBUG set: errors print their traceback as well as the one-line message."""
    return bool((os.environ if env is None else env).get("GEXFLOW_DEBUG"))


def load_settings(flags: dict | None = None, env: dict | None = None) -> Settings:
    """Build Settings from ``flags`` (None values ignored) over env vars over defaults, validated."""
    env = dict(os.environ if env is None else env)
    values: dict = {}
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    for name, value in (flags or {}).items():
        if value is not None and value != ():
            values[name] = value
    values["prefect_api_url"] = env.get("PREFECT_API_URL") or None
    return _validated(values)


def _validated(values: dict) -> Settings:
    parsers = {f.name: f.metadata["parse"] for f in declared()}
    out = {}
    for name, value in values.items():
        parse = parsers.get(name)
        out[name] = parse(name, value) if parse is not None and value is not None else value
    return Settings(**out)


def _flag(name, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _number(name, value, kind, minimum):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return number


def parse_currencies(value) -> tuple[str, ...]:
    """'btc,eth' or ['BTC', 'ETH'] -> ('BTC', 'ETH'); unknown currencies are a ConfigError."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        for part in str(item).split(","):
            code = part.strip().upper()
            if not code:
                continue
            if code not in KNOWN_CURRENCIES:
                raise ConfigError(f"unknown currency {part.strip()!r} (Deribit options: {', '.join(KNOWN_CURRENCIES)})")
            if code not in out:
                out.append(code)
    if not out:
        raise ConfigError("no currency given")
    return tuple(out)


def parse_source(value: str) -> str:
    if value in ("live", "sample"):
        return value
    if value.startswith("replay:") and len(value) > len("replay:"):
        return value
    raise ConfigError(f"--source must be live, sample or replay:DIR, got {value!r}")
