"""Fault scenarios on real processes: the ingester as a child (``tests/support``), real
nats-server and ClickHouse (shared, or dedicated ones a scenario may kill), and an oracle
(``oracle.py``) that counts lost, visibly duplicated, altered and misrouted envelopes after a
drain. Store refusals share one shape (``refusal.py``).

    uv run pytest tests/faults -m faults        # short versions (also part of `make test`)
    uv run pytest tests/faults -m faults_long   # long versions (`make faults` runs both)

Every scenario runs the shipped defaults, but for the settings it is about (its docstring says
which, and its figures record them). It appends one JSON line of figures to
``.ponix/faults-results.jsonl`` (``PONIX_FAULTS_RESULTS`` elsewhere); the run ends with a table
of them (``report.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.figures import RECORDED, results_path
from tests.faults.harness import default_pipeline
from tests.faults.report import text_table
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher


@pytest.fixture
def pipeline(nats_url: str, clickhouse_url: str, clickhouse_db: str, unique: str) -> Pipeline:
    """The test's own stream, consumer, DLQ and database on the session's servers, at the
    shipped defaults."""
    return default_pipeline(
        nats_url=nats_url, clickhouse_url=clickhouse_url, unique=unique, database=clickhouse_db
    )


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[ServiceLauncher]:
    """Starts services; every one still running is SIGKILLed after the test."""
    async with ServiceLauncher(tmp_path) as launcher:
        yield launcher


@pytest.fixture
async def client(pipeline: Pipeline) -> AsyncIterator[PipelineClient]:
    """Publishes and reads for ``pipeline`` (streams provisioned, deleted after the test)."""
    async with PipelineClient.connect(pipeline, provision=True) as connected:
        yield connected
        await connected.delete_streams()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECORDED:
        return
    terminalreporter.section("fault scenario figures")
    for line in text_table(RECORDED):
        terminalreporter.write_line(line)
    terminalreporter.write_line(
        f"({len(RECORDED)} JSON lines appended to {results_path()}; "
        "`uv run python -m tests.faults.report --markdown` renders them for the README)"
    )
