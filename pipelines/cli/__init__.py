"""The ``gexflow`` command line (``python -m pipelines.cli`` runs it too)."""

from pipelines.cli.app import main

__all__ = ["main"]
