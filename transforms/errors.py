"""The one root of gexflow's expected failures, importable by every layer.

It lives in the pure layer because it is pure (no imports); ``warehouse`` may import this module and
nothing else of ``transforms`` (tests/unit/test_architecture.py). Each layer subclasses it; classes that callers
catch as ``ValueError`` keep that base as a mixin. The CLI and Prefect's run-log filter test
``isinstance(exc, GexflowError)``: such a failure is one line for the user; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class GexflowError(Exception):
    """Base of every expected failure. ``str(err)`` is one line meant for the user; ``exit_code`` the CLI's."""

    exit_code = 2


__all__ = ["GexflowError"]
