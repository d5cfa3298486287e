"""The ponix command line: ``ponix dev``, ``publish``, ``query``, ``status``, ``audit``, ...

``main`` is the console script; ``app`` is the typer application (for tests and embedding).
"""

from ponix_cli.app import app, main

__all__ = ("app", "main")
