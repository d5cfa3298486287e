"""Structured logging, Prometheus metrics and health endpoints (hosting a service is
``ponix_service``'s)."""

from ponix_telemetry import metrics
from ponix_telemetry.errors import ListenError, PortInUseError, TelemetryError
from ponix_telemetry.health import HealthServer, ReadinessCheck
from ponix_telemetry.logs import configure_logging, get_logger

__all__ = (
    "HealthServer",
    "ListenError",
    "PortInUseError",
    "ReadinessCheck",
    "TelemetryError",
    "configure_logging",
    "get_logger",
    "metrics",
)
