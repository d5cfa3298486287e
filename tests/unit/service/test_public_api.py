"""ponix_service's public API is pinned, and it sits where the layering says: it may use
telemetry, config and the runner; telemetry no longer hosts services."""

from __future__ import annotations

import ponix_service
import ponix_telemetry


def test_public_api_is_pinned() -> None:
    assert ponix_service.__all__ == (
        "USAGE_ERROR",
        "Component",
        "ServiceCommand",
        "StartFn",
        "serve",
    )


def test_telemetry_keeps_only_logs_metrics_and_health() -> None:
    assert not hasattr(ponix_telemetry, "serve")
    assert not hasattr(ponix_telemetry, "Component")
