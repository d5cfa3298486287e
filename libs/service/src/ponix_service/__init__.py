"""Hosts a Ponix service: its command line, its logging, its health endpoint, its start-up and
its runner, in that order.

Layering: services use this; it uses telemetry (logs, metrics, health), config and the runner.
"""

from ponix_service.command import USAGE_ERROR, ServiceCommand
from ponix_service.host import Component, StartFn, serve

__all__ = ("USAGE_ERROR", "Component", "ServiceCommand", "StartFn", "serve")
