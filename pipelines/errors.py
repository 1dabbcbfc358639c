"""Errors the CLI turns into a one-line message and a non-zero exit: one root, ``GexflowError``
(``transforms.errors``), subclassed by each layer (``ConfigError``, ``SourceError``, ``DeribitError``,
``QualityError`` here; ``WarehouseError``; ``SchemaError``, ``NormaliseError``, ``TardisFormatError``)."""

from transforms.errors import GexflowError


class SourceError(GexflowError):
    """A data source (replay directory, Tardis file) is missing or malformed."""


def expected_errors() -> tuple[type, ...]:
    """The exception classes whose message is the whole story for the user (bad input, a source or exchange
    error, a storage problem): shown as one line, without a traceback. Anything else is a bug."""
    return (GexflowError,)


__all__ = ["GexflowError", "SourceError", "expected_errors"]
