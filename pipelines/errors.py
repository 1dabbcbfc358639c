"""Errors the CLI turns into a one-line message and a non-zero exit."""


class GexflowError(Exception):
    """Base of every expected failure. ``str(err)`` is one line meant for the user."""

    exit_code = 2


class SourceError(GexflowError):
    """A data source (replay directory, Tardis file) is missing or malformed."""


def expected_errors() -> tuple[type, ...]:
    """Every exception class whose message is the whole story for the user (bad input, a source or exchange
    error, a storage problem): shown as one line, without a traceback. Anything else is a bug."""
    from pipelines.config import ConfigError
    from transforms.normalise import NormaliseError
    from transforms.schemas import SchemaError
    from warehouse import WarehouseError

    return (GexflowError, WarehouseError, ConfigError, NormaliseError, SchemaError)
