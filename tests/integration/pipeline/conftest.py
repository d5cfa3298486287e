"""Fixtures of the pipeline tests: one isolated pipeline per test on the session's servers, a
client of it, and a launcher whose services are all stopped when the test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher


@pytest.fixture
def pipeline(nats_url: str, clickhouse_url: str, clickhouse_db: str, unique: str) -> Pipeline:
    # Memory streams: none of these tests restarts NATS, and the session's nats-server fsyncs
    # every file-stored message (sync_interval: always), which would pace publishing instead
    # of the pipeline. The code under test is the same for both storages.
    return Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=clickhouse_db,
        NATS_STORAGE="memory",
    )


@pytest.fixture
async def client(pipeline: Pipeline) -> AsyncIterator[PipelineClient]:
    async with PipelineClient.connect(pipeline) as client:
        yield client
        await client.delete_streams()


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[ServiceLauncher]:
    async with ServiceLauncher(tmp_path) as launcher:
        yield launcher
