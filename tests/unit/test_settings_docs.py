"""Settings are declared once (pipelines/config.py); the docs table and .env.example follow the declarations."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from pipelines.config import ConfigError, Settings, declared, load_settings, settings_table

REPO = Path(__file__).resolve().parents[2]


def test_the_docs_settings_table_is_the_generated_one():
    text = (REPO / "docs" / "cli.md").read_text()
    block = re.search(r"<!-- settings-table:[^>]*-->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert block, "docs/cli.md lost its generated settings table"
    assert block[1] == settings_table(), (
        "regenerate it: python -c 'from pipelines.config import settings_table; print(settings_table())'"
    )


def test_every_setting_is_declared_with_a_doc_and_every_env_variable_is_in_env_example():
    assert [f.name for f in fields(Settings) if f.name != "extra"] == [f.name for f in declared()]
    example = set(re.findall(r"^#?\s*(GEXFLOW_[A-Z_]+)=", (REPO / ".env.example").read_text(), re.M))
    envs = {f.metadata["env"] for f in declared() if f.metadata["env"]}
    assert envs <= example, sorted(envs - example)
    assert example <= envs, sorted(example - envs)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("GEXFLOW_KERNEL_THREADS", "-1", "kernel_threads must be >= 0"),
        ("GEXFLOW_LOCK_WAIT_S", "soon", "lock_wait_s must be a number"),
        ("GEXFLOW_INCLUDE_BLOCKS", "maybe", "include_blocks must be true or false"),
        ("GEXFLOW_WHAT_IFS", "sometimes", "what_ifs must be true or false"),
        ("GEXFLOW_ENGINE", "dask", "--engine must be auto, direct or prefect"),
    ],
)
def test_a_declared_setting_parses_its_env_text_or_says_why_not(env, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({}, {env: value})


def test_env_text_becomes_the_declared_type():
    s = load_settings({}, {"GEXFLOW_KERNEL_THREADS": "1", "GEXFLOW_LOCK_WAIT_S": "2.5", "GEXFLOW_CURRENCIES": "eth"})
    assert (s.kernel_threads, s.lock_wait_s, s.currencies) == (1, 2.5, ("ETH",))
