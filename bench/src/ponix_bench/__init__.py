"""Ponix benchmark: the ingester against the raw pull protocol, on real local servers.

``ponix bench`` (or ``ponix-bench``) runs it; :data:`ponix_bench.command.app` is the command.
This module imports nothing: the contender processes (``python -m ponix_bench.contender``) must
not pay for the harness's imports in their memory figures.
"""

__all__ = ()
