"""The all-in-one service: the producer and the ingester under one runner (the seed's
``ponix-all-in-one``), with process selection so one image can play either part."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from ponix_config import ClickHouseSettings, NatsSettings, PonixSettings, load_settings
from ponix_ingester import Ingester, IngesterSettings
from ponix_producer import Producer, ProducerSettings
from ponix_runner import RunResult
from ponix_service import Component, ServiceCommand, serve

ProcessName = Literal["producer", "ingester"]
PROCESSES: tuple[ProcessName, ...] = ("producer", "ingester")

COMMAND = ServiceCommand(
    "ponix-all-in-one",
    "Run the producer and the ingester under one runner (PONIX_PROCESSES picks either).",
    variables="PONIX_PROCESSES, NATS_*, CLICKHOUSE_*, PRODUCER_*, INGESTER_*",
)


class AllInOneSettings(PonixSettings):
    """Which processes this instance runs (``PONIX_PROCESSES=producer,ingester``)."""

    model_config = SettingsConfigDict(env_prefix="PONIX_")

    processes: Annotated[list[ProcessName], NoDecode] = Field(
        default_factory=lambda: list(PROCESSES),
        description="Comma-separated processes to run: producer, ingester.",
    )

    @field_validator("processes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


async def run_all_in_one(processes: Sequence[ProcessName] | None = None) -> RunResult:
    """Load every setting, start the selected processes, and supervise them until shutdown."""
    telemetry = COMMAND.start_logging(
        [AllInOneSettings, NatsSettings, ClickHouseSettings, IngesterSettings, ProducerSettings]
    )
    selected = list(processes or load_settings(AllInOneSettings).processes)
    nats = load_settings(NatsSettings)
    clickhouse = load_settings(ClickHouseSettings) if "ingester" in selected else None
    ingester = load_settings(IngesterSettings) if "ingester" in selected else None
    producer = load_settings(ProducerSettings) if "producer" in selected else None

    async def start() -> Sequence[Component]:
        started: list[Component] = []
        # The ingester first: it applies migrations and provisions the consumer, so nothing
        # the producer publishes waits on a stream or table that does not exist yet.
        if clickhouse is not None and ingester is not None:
            started.append(await Ingester.start(nats, clickhouse, ingester))
        if producer is not None:
            started.append(await Producer.start(nats, producer))
        return started

    grace = ingester.shutdown_grace if ingester is not None else 4.0
    return await serve(start, telemetry, grace=grace)
