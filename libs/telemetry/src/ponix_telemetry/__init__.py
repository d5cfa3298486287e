"""Structured logging, Prometheus metrics and health endpoints."""

from ponix_telemetry import metrics
from ponix_telemetry.errors import ListenError, PortInUseError, TelemetryError
from ponix_telemetry.health import HealthServer, ReadinessCheck
from ponix_telemetry.logs import configure_logging, get_logger
from ponix_telemetry.service import Component, serve

__all__ = (
    "Component",
    "HealthServer",
    "ListenError",
    "PortInUseError",
    "ReadinessCheck",
    "TelemetryError",
    "configure_logging",
    "get_logger",
    "metrics",
    "serve",
)
