"""Storage only: raw bodies, the Parquet lake, the DuckDB catalog, the writer lock.

Never imports ``pipelines`` or ``transforms`` (but the dependency-free error root ``transforms.errors``);
frames and schemas come in as arguments.
"""

from transforms.errors import GexflowError


class WarehouseError(GexflowError):
    """A storage failure; ``str(err)`` is one line meant for the user."""

    exit_code = 2
