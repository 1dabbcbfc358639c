"""Settings, read once: command-line flags over ``GEXFLOW_*`` environment variables over defaults.

Nothing below this module reads ``os.environ``; it receives a frozen :class:`Settings`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_API_URL = "https://www.deribit.com/api/v2"
DEFAULT_CURRENCIES = ("BTC", "ETH")
# Deribit option settlement currencies (USDC carries the linear SOL/XRP/... options).
KNOWN_CURRENCIES = ("BTC", "ETH", "USDC", "USDT")
# Version of the analytics code, recorded with every computed snapshot (pipelines/inputs.py): bump it when a change
# of transforms/ or pipelines/compute.py changes stored numbers, and every computed snapshot counts as stale.
ANALYTICS_VERSION = 1


class ConfigError(ValueError):
    """A setting is invalid; the message is one line meant for the user."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    api_url: str = DEFAULT_API_URL
    currencies: tuple[str, ...] = DEFAULT_CURRENCIES
    source: str = "live"  # 'live' | 'sample' | 'replay:<DIR>'
    # Client limits: Deribit's credit bucket allows ~20 req/s sustained; we stay well under.
    rate_per_s: float = 10.0
    burst: int = 20
    instruments_rate_per_s: float = 0.1  # get_instruments has its own limit: 1 per 10 s, burst 5
    instruments_burst: int = 5
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    engine: str = "auto"  # 'auto' | 'direct' | 'prefect'
    prefect_api_url: str | None = None
    max_snapshot_age_s: float = 900.0  # freshness check of live snapshots; 0 turns it off
    lock_wait_s: float = 0.0  # how long a writer waits for another one; 0 = fail at once (flows wait longer)
    # taker_flow counts block trades and combo legs too: the default of every compute, the automatic ones
    # (run, the re-compute after new trades, flows) included; `compute --include-blocks` turns it on once
    include_blocks: bool = False
    # an existing Dask cluster's scheduler (tcp://host:8786): backfill days fan out over its workers through
    # prefect-dask (pip install 'gexflow[dask]'); unset = the flow's own thread pool
    dask_address: str | None = None
    # numba threads of the GEX profile kernel; 0 = per chunk of snapshots, the cores other processes leave idle
    # (pipelines/threads.py: on a shared box a busy core would make 2 threads ~19x slower than 1)
    kernel_threads: int = 0
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


_ENV = {
    "data_dir": "GEXFLOW_DATA_DIR",
    "api_url": "GEXFLOW_DERIBIT_URL",
    "currencies": "GEXFLOW_CURRENCIES",
    "source": "GEXFLOW_SOURCE",
    "rate_per_s": "GEXFLOW_RATE_PER_S",
    "burst": "GEXFLOW_BURST",
    "connect_timeout_s": "GEXFLOW_CONNECT_TIMEOUT_S",
    "read_timeout_s": "GEXFLOW_READ_TIMEOUT_S",
    "max_retries": "GEXFLOW_MAX_RETRIES",
    "backoff_base_s": "GEXFLOW_BACKOFF_BASE_S",
    "backoff_cap_s": "GEXFLOW_BACKOFF_CAP_S",
    "engine": "GEXFLOW_ENGINE",
    "max_snapshot_age_s": "GEXFLOW_MAX_SNAPSHOT_AGE_S",
    "lock_wait_s": "GEXFLOW_LOCK_WAIT_S",
    "include_blocks": "GEXFLOW_INCLUDE_BLOCKS",
    "dask_address": "GEXFLOW_DASK_ADDRESS",
    "kernel_threads": "GEXFLOW_KERNEL_THREADS",
}


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
    out: dict = {}
    for name, value in values.items():
        if name == "data_dir":
            if not str(value).strip():
                raise ConfigError("--data-dir must not be empty (use . for the current directory)")
            out[name] = Path(value).expanduser()
            if out[name].exists() and not out[name].is_dir():
                raise ConfigError(f"--data-dir {value} is a file, not a directory")
        elif name == "api_url":
            if not re.match(r"^https?://[^\s/]+", str(value)):
                raise ConfigError(f"--api-url must be an http(s) URL, got {value!r}")
            out[name] = str(value).rstrip("/")
        elif name == "currencies":
            out[name] = parse_currencies(value)
        elif name == "source":
            out[name] = parse_source(str(value))
        elif name == "engine":
            if value not in ("auto", "direct", "prefect"):
                raise ConfigError(f"--engine must be auto, direct or prefect, got {value!r}")
            out[name] = value
        elif name == "include_blocks":
            out[name] = _flag(name, value)
        elif name == "dask_address":
            if not re.match(r"^(tcp|tls|ucx|ws|wss|inproc)://[^\s/]+", str(value)):
                raise ConfigError(
                    f"--dask-address must be a Dask scheduler address like tcp://host:8786, got {value!r}"
                )
            out[name] = str(value)
        elif name in ("burst", "max_retries", "kernel_threads"):
            out[name] = _number(name, value, int, minimum=0)
        elif name in (
            "rate_per_s",
            "max_snapshot_age_s",
            "lock_wait_s",
            "connect_timeout_s",
            "read_timeout_s",
            "backoff_base_s",
            "backoff_cap_s",
        ):
            out[name] = _number(name, value, float, minimum=0)
        else:
            out[name] = value
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
