"""Realistic synthetic envelopes: a fleet of devices per organization reporting sensor readings."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from ponix_proto import new_envelope_id, pb

_FIRMWARE = ("1.4.2", "1.5.0", "2.0.1")


@dataclass(frozen=True, slots=True)
class OutgoingEnvelope:
    """One encoded envelope ready to publish: its bytes, its id and its organization."""

    payload: bytes
    envelope_id: str
    organization_id: str


class SyntheticEnvelopes:
    """Generates envelopes like a small IoT fleet: ``organizations`` x ``devices`` sensors."""

    def __init__(self, *, organizations: int = 3, devices: int = 10, seed: int | None = None):
        self._rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
        self._fleet = [
            (f"org-{o:03d}", f"device-{o:03d}-{d:04d}")
            for o in range(organizations)
            for d in range(devices)
        ]

    def next(self, now: datetime | None = None) -> OutgoingEnvelope:
        at = now or datetime.now(UTC)
        rng = self._rng
        organization_id, device_id = rng.choice(self._fleet)
        envelope_id = new_envelope_id(at)
        env = pb.ProcessedEnvelope(
            id=envelope_id, end_device_id=device_id, organization_id=organization_id
        )
        env.occurred_at.FromDatetime(at)
        env.processed_at.FromDatetime(at)
        env.data.update(
            {
                "temperature": round(rng.gauss(21.0, 3.0), 2),
                "humidity": round(rng.uniform(20.0, 80.0), 1),
                "battery": float(rng.randint(5, 100)),
                "rssi": float(rng.randint(-110, -40)),
                "firmware": rng.choice(_FIRMWARE),
                "door_open": rng.random() < 0.1,
            }
        )
        return OutgoingEnvelope(env.SerializeToString(), envelope_id, organization_id)
