"""Errors the CLI turns into a one-line message and a non-zero exit."""


class GexflowError(Exception):
    """Base of every expected failure. ``str(err)`` is one line meant for the user."""

    exit_code = 2


class SourceError(GexflowError):
    """A data source (replay directory, Tardis file) is missing or malformed."""
