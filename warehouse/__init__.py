"""Storage only: raw bodies, the Parquet lake, the DuckDB catalog, the writer lock.

Never imports ``pipelines`` or ``transforms``; frames and schemas come in as arguments.
"""


class WarehouseError(Exception):
    """A storage failure; ``str(err)`` is one line meant for the user."""

    exit_code = 2
