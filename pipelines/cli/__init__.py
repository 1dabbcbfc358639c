"""The ``gexflow`` command line (``python -m pipelines.cli`` runs it too)."""

from pipelines.cli.app import entry, main

__all__ = ["entry", "main"]
