"""A Ponix RS user's first steps: the ingester stops on the RS table naming the way forward, and
``ponix migrate --from-rs`` upgrades it in place, keeping every row."""

from __future__ import annotations

import pytest
from clickhouse_driver import Client

from ponix_clickhouse import parse_version
from tests.e2e.conftest import Cli
from tests.support.ponix_rs import IDENTICAL, ROWS, RS_DDL, for_server, insert_rows

pytestmark = pytest.mark.e2e


def test_ingest_names_the_upgrade_and_migrate_from_rs_keeps_every_row(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    table = f"{pipeline_env['CLICKHOUSE_DATABASE']}.processed_envelopes"
    client = Client.from_url(pipeline_env["CLICKHOUSE_URL"])
    try:
        version = parse_version(str(client.execute("SELECT version()")[0][0]))
        client.execute(for_server(RS_DDL.format(table=table), version))
        client.execute(*insert_rows(table, ROWS))

        ingest = cli.run("ingest", INGESTER_STARTUP_DEADLINE="5", HTTP_PORT="0")
        assert ingest.returncode == 1, ingest.stderr
        assert "is a Ponix RS table (no id column)" in ingest.stderr
        assert "`ponix migrate --from-rs`" in ingest.stderr

        upgraded = cli.ok("migrate", "--from-rs").splitlines()
        assert upgraded[0].startswith(
            f"upgraded {table} from Ponix RS: {len(ROWS)} rows ({IDENTICAL} identical to "
            "another row, each kept with its own id) in "
        )
        assert upgraded[1:] == [
            f"the Ponix RS table is kept as {table}_rs: drop it once you are satisfied",
            "applied 0001_create_processed_envelopes",
        ]
        assert client.execute(f"SELECT count() FROM {table} FINAL")[0][0] == len(ROWS)
        assert client.execute(f"SELECT count() FROM {table}_rs")[0][0] == len(ROWS)
    finally:
        client.disconnect()

    assert cli.ok("migrate").startswith("up to date: 1 migration applied")
    assert (
        cli.ok("migrate", "--from-rs") == f"{table} already has an id column: nothing to upgrade\n"
    )
