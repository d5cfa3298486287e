"""The operator's reading verbs on real servers: ``query`` in every format with parameters,
``audit`` over a range with its exit codes, and ``stream peek`` leaving the durable consumer as
it was."""

from __future__ import annotations

import csv
import io
import json

import nats
import pytest

from ponix_devstack import ClickHouseServer, free_port
from tests.e2e.conftest import Cli, exact_rows, one_line_error, wait_until

pytestmark = pytest.mark.e2e

NUMBERS = "SELECT number AS n, toString(number) AS s FROM system.numbers LIMIT 3"


def test_query_writes_each_format_and_binds_parameters(
    cli: Cli, clickhouse_server: ClickHouseServer
) -> None:
    cli.env.update(
        CLICKHOUSE_URL=clickhouse_server.url, CLICKHOUSE_HTTP_URL=clickhouse_server.http_url
    )

    assert cli.ok("query", NUMBERS) == "0\t0\n1\t1\n2\t2\n"  # piped: TabSeparated, no header
    assert list(csv.reader(io.StringIO(cli.ok("query", "-f", "csv", NUMBERS)))) == [
        ["n", "s"],
        ["0", "0"],
        ["1", "1"],
        ["2", "2"],
    ]
    lines = cli.ok("query", "--format", "jsonl", NUMBERS).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"n": 0, "s": "0"},
        {"n": 1, "s": "1"},
        {"n": 2, "s": "2"},
    ]
    # A ClickHouse format name: the server writes it (UInt64 quoted, as ClickHouse does).
    server_lines = cli.ok("query", "-f", "JSONEachRow", NUMBERS).splitlines()
    assert [json.loads(line) for line in server_lines] == [
        {"n": "0", "s": "0"},
        {"n": "1", "s": "1"},
        {"n": "2", "s": "2"},
    ]

    bound = cli.ok(
        "query",
        "--param",
        "who=it's me",
        "--param",
        "n=2",
        "SELECT {who:String} AS who, number FROM system.numbers LIMIT {n:UInt8}",
    )
    assert bound == "it's me\t0\nit's me\t1\n"

    line = one_line_error(cli.run("query", "-f", "json", "SELECT 1"))
    assert line.startswith("error: clickhouse.query_failed: Code 73: json is neither")


def test_a_format_without_an_http_interface_says_where_it_looked(
    cli: Cli, clickhouse_url: str
) -> None:
    dead = free_port()
    done = cli.run(
        "query",
        "-f",
        "Pretty",
        "SELECT 1",
        CLICKHOUSE_URL=clickhouse_url,
        CLICKHOUSE_HTTP_URL=f"http://127.0.0.1:{dead}",
    )
    line = one_line_error(done)
    assert line.startswith(f"error: clickhouse.unreachable: http://127.0.0.1:{dead}")
    assert "CLICKHOUSE_HTTP_URL" in line


def _audit(cli: Cli, *args: str) -> tuple[int, dict[str, object]]:
    done = cli.run("audit", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_audit_reads_a_range_and_exits_3_on_findings_1_on_errors(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    table = f"{pipeline_env['CLICKHOUSE_DATABASE']}.processed_envelopes"
    ingester = cli.start("ingest")
    ingester.wait_ready()
    cli.ok("publish", "--count", "30")
    wait_until(
        lambda: exact_rows(pipeline_env["CLICKHOUSE_URL"], f"SELECT count() FROM {table}") == 30,
        timeout=30,
        what="30 rows",
    )
    assert ingester.stop() == 0

    code, whole = _audit(cli)
    assert (code, whole["read"], whole["stored"], whole["ok"]) == (0, 30, 30, True)
    code, tail = _audit(cli, "--from-seq", "21")
    assert (code, tail["first_seq"], tail["last_seq"], tail["read"]) == (0, 21, 30, 10)
    code, recent = _audit(cli, "--since", "10m")
    assert (code, recent["read"]) == (0, 30)

    # Lose one stored row: the audit finds it missing (acked, not in the table) and exits 3.
    cli.ok("query", f"ALTER TABLE {table} DELETE WHERE id IN (SELECT id FROM {table} LIMIT 1)")
    wait_until(
        lambda: exact_rows(pipeline_env["CLICKHOUSE_URL"], f"SELECT count() FROM {table}") == 29,
        timeout=30,
        what="the mutation",
    )
    code, lost = _audit(cli)
    assert (code, lost["ok"], lost["missing_total"]) == (3, False, 1)
    done = cli.run("audit")
    assert done.returncode == 3
    assert done.stdout.strip().endswith("FAILED: 1 missing, 0 duplicated")

    dead = free_port()
    unreachable = cli.run("audit", CLICKHOUSE_URL=f"clickhouse://127.0.0.1:{dead}")
    assert one_line_error(unreachable).startswith("error: clickhouse.unreachable")


async def test_peek_decodes_envelopes_and_leaves_the_durable_consumer_alone(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    # The ingester provisions the stream and its durable consumer, then stops: 6 envelopes
    # then wait for it.
    ingester = cli.start("ingest")
    ingester.wait_ready()
    assert ingester.stop() == 0
    cli.ok("publish", "--count", "6")

    nc = await nats.connect(pipeline_env["NATS_URL"])
    try:
        js = nc.jetstream()
        stream, durable = pipeline_env["NATS_STREAM"], pipeline_env["NATS_CONSUMER"]
        before = await js.consumer_info(stream, durable)
        consumers_before = len(await js.consumers_info(stream))

        first_two = [
            json.loads(line) for line in cli.ok("stream", "peek", "-n", "2", "--json").splitlines()
        ]
        assert [m["seq"] for m in first_two] == [1, 2]
        assert all(m["envelope"]["id"] and m["envelope"]["organization_id"] for m in first_two)
        assert first_two[0]["headers"]["Nats-Msg-Id"] == first_two[0]["envelope"]["id"]

        tail = cli.ok("stream", "peek", "--from-seq", "5")
        assert [line.split()[0] for line in tail.splitlines() if line.startswith("#")] == [
            "#5",
            "#6",
        ]

        org = first_two[0]["envelope"]["organization_id"]
        subject = f"{pipeline_env['NATS_SUBJECT_PREFIX']}.{org}"
        filtered = [
            json.loads(line) for line in cli.ok("stream", "peek", subject, "--json").splitlines()
        ]
        assert filtered
        assert {m["envelope"]["organization_id"] for m in filtered} == {org}

        after = await js.consumer_info(stream, durable)
        assert (after.num_pending, after.num_ack_pending, after.delivered.stream_seq) == (
            before.num_pending,
            before.num_ack_pending,
            before.delivered.stream_seq,
        )
        assert after.num_pending == 6
        assert after.config.filter_subject == before.config.filter_subject
        assert len(await js.consumers_info(stream)) == consumers_before  # its own are gone
    finally:
        await nc.close()
