"""Producer settings (``PRODUCER_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ponix_config import PonixSettings, SeedVariable


def _rate_from_interval(seconds: str) -> object:
    """Ponix RS published one envelope every PONIX_INTERVAL_SECS seconds."""
    try:
        interval = float(seconds)
    except ValueError:
        return seconds  # not a number: validation names the variable
    return 1.0 / interval if interval > 0 else seconds


class ProducerSettings(PonixSettings):
    """How fast and how many synthetic envelopes to publish, and from which fleet."""

    model_config = SettingsConfigDict(env_prefix="PRODUCER_")
    seed_variables: ClassVar[tuple[SeedVariable, ...]] = (
        SeedVariable("PONIX_INTERVAL_SECS", "rate", _rate_from_interval),
        SeedVariable("PONIX_STARTUP_TIMEOUT_SECS", "startup_deadline"),
    )

    rate: float = Field(10.0, gt=0, description="Envelopes per second.")
    count: int = Field(0, ge=0, description="Envelopes to publish, then stop; 0: forever.")
    organizations: int = Field(3, ge=1, description="Organizations in the synthetic fleet.")
    devices: int = Field(10, ge=1, description="Devices per organization.")
    max_in_flight: int = Field(256, ge=1, description="Publishes awaiting their PubAck at once.")
    startup_deadline: float = Field(
        120.0, gt=0, description="Seconds to wait for NATS at start-up before giving up."
    )
