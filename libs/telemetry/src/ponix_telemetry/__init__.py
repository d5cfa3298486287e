"""Structured logging, Prometheus metrics and health endpoints."""

from ponix_telemetry import metrics
from ponix_telemetry.health import HealthServer, ReadinessCheck
from ponix_telemetry.logs import configure_logging, get_logger

__all__ = ("HealthServer", "ReadinessCheck", "configure_logging", "get_logger", "metrics")
