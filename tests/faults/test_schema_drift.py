"""Schema drift: the table's ``data`` column is dropped while envelopes flow, then added back
(``ALTER TABLE ... ADD COLUMN data String``, as 18.16 can).

Every insert fails with NO_SUCH_COLUMN (16), which names the table, not a row: the store's
fault. The writer logs that it holds, holds its batch and retries it in place; once the column
is back, the held batch and the backlog go in. Nothing is nakked, redelivered or dead-lettered
(the issue that asked for this saw 5,389 valid envelopes dead-lettered within 20 s).

Rows stored before the drop lose their ``data`` with the column (the operator's doing): the
oracle checks them for id and count only, and the content of every row stored after.

Settings: the shipped defaults. Short: the column missing for 5 s (``make test``); long: 2 min.
"""

from __future__ import annotations

import pytest

from tests.faults.refusal import Fault, assert_held_in_place, failed_for, refusal
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher

HOLDING = "clickhouse failed an insert, holding the batch and retrying in place"
BACK = "clickhouse accepts inserts again"


async def schema_drift(
    client: PipelineClient, launch: ServiceLauncher, *, refused_for: float, rate: float, size: str
) -> None:
    table = client.pipeline.table
    fault = Fault(
        refuse=lambda: client.query(f"ALTER TABLE {table} DROP COLUMN data"),
        restore=lambda: client.query(f"ALTER TABLE {table} ADD COLUMN data String"),
        forgets_content=True,
    )
    ingester = await launch.start(client.pipeline)
    run = await refusal(
        client,
        launch,
        scenario="schema_drift_data_dropped",
        size=size,
        fault=fault,
        refused_for=refused_for,
        rate=rate,
        seed=16,
        ingester=ingester,
    )
    assert_held_in_place(run)
    assert failed_for(run, "schema_drift") > 0, run.figures.notes["failed_by_reason"]
    # Visible: one warning when holding starts (with the server's reason), one when it ends.
    held = ingester.events(HOLDING)
    assert len(held) == 1, [line.text for line in held]
    assert held[0].level == "warning"
    assert held[0].fields.get("reason") == "schema_drift", held[0].text
    assert len(ingester.events(BACK)) == 1


@pytest.mark.faults
async def test_a_dropped_column_is_held_in_place_until_it_is_back(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await schema_drift(client, launch, refused_for=5.0, rate=300, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_a_column_dropped_for_2_minutes(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await schema_drift(client, launch, refused_for=120.0, rate=300, size="long")
