"""Ingester settings (``INGESTER_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ponix_config import PonixSettings, SeedVariable


class IngesterSettings(PonixSettings):
    """Limits on envelopes and on how long start-up and shutdown may take."""

    model_config = SettingsConfigDict(env_prefix="INGESTER_")
    seed_variables: ClassVar[tuple[SeedVariable, ...]] = (
        SeedVariable("PONIX_STARTUP_TIMEOUT_SECS", "startup_deadline"),
    )

    max_envelope_bytes: int = Field(
        256 * 1024,
        ge=64,
        description="Larger envelopes are dead-lettered as envelope.too_large.",
    )
    startup_deadline: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for NATS and ClickHouse at start-up before giving up.",
    )
    shutdown_grace: float = Field(
        4.0, gt=0, description="Seconds for in-flight batches to be stored and acked on shutdown."
    )
    migrate: bool = Field(True, description="Apply ClickHouse migrations at start-up.")
    trust_payload_org: bool = Field(
        False,
        description="Store an envelope's organization_id whatever subject it came on. Off by "
        "default: an envelope on another organization's subject is dead-lettered "
        "(envelope.subject_mismatch), so publish permissions per subject bind the tenant.",
    )
