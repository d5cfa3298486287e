"""JSON lines from a file or stdin: a bad line is reported with its number and skipped, or with
``--strict`` ends the run with one line and exit 1; publishing the same file twice stores each
line once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import nats
import pytest
from clickhouse_driver import Client

from ponix_producer import envelope_from_json
from tests.e2e.conftest import PONIX, Cli, one_line_error

pytestmark = pytest.mark.e2e


def _line(device: str, **extra: object) -> str:
    envelope = {
        "organization_id": "acme",
        "end_device_id": device,
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"temperature": 21.5},
        **extra,
    }
    return json.dumps(envelope)


def test_bad_lines_are_skipped_or_stop_a_strict_run(cli: Cli, pipeline_env: dict[str, str]) -> None:
    cli.env.update(pipeline_env)
    cli.ok("provision")  # publish never creates the stream
    argv = {"lenient": ["publish", "--file", "-"], "strict": ["publish", "--file", "-", "--strict"]}
    # Each run its own devices: the same line in both would get the same id, and one copy
    # would be counted as JetStream's duplicate.
    texts = {
        name: "\n".join(
            [_line(f"{name}-1"), "{not json", "", _line(f"{name}-2"), '{"end_device_id": "d-3"}']
        )
        + "\n"
        for name in argv
    }
    running = {
        name: subprocess.Popen(
            [*PONIX, *args],
            cwd=cli.cwd,
            env={**cli.env, **pipeline_env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in argv.items()
    }
    done = {}
    for name, proc in running.items():
        out, err = proc.communicate(texts[name], timeout=60)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    lenient = done["lenient"]
    assert lenient.returncode == 0, lenient.stderr
    assert lenient.stdout.startswith("published 2 envelopes in ")
    assert lenient.stdout.rstrip().endswith("duplicates: 0, bad lines: 2")
    warnings = lenient.stderr.splitlines()
    assert warnings[0].startswith("warning: envelope.bad_json_line: line 2: not JSON")
    assert warnings[1] == (
        "warning: envelope.bad_json_line: line 5: occurred_at is required (skipped)"
    )

    line = one_line_error(done["strict"])
    assert line.startswith("error: envelope.bad_json_line: line 2: not JSON")
    assert line.endswith("stopped there (--strict), 1 envelope before it was published")


async def _wait_consumed(env: dict[str, str], messages: int) -> None:
    """Until the stream holds ``messages`` and the ingester has acked them all (stored)."""
    nc = await nats.connect(env["NATS_URL"])
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 30
        while True:
            last = (await js.stream_info(env["NATS_STREAM"])).state.last_seq
            info = await js.consumer_info(env["NATS_STREAM"], env["NATS_CONSUMER"])
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            if last == messages and floor == last:
                return
            assert time.monotonic() < deadline, f"{messages} messages stored and acked"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def _rows_per_id(env: dict[str, str]) -> dict[str, int]:
    """Each stored id with its number of rows in the exact read (FINAL)."""
    table = f"{env['CLICKHOUSE_DATABASE']}.processed_envelopes"
    client = Client.from_url(env["CLICKHOUSE_URL"])
    try:
        rows = client.execute(f"SELECT toString(id), count() FROM {table} FINAL GROUP BY id")
    finally:
        client.disconnect()
    return {str(envelope_id): int(n) for envelope_id, n in rows}


async def test_publishing_a_file_twice_stores_each_line_once(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    ingester = cli.start("ingest")
    ingester.wait_ready()
    lines = [
        _line("d-1"),
        _line("d-2"),
        _line("d-1", data={"temperature": 22.0}),
        _line("d-3", id="0190c5e8-0000-7000-8000-000000000001"),
    ]
    path = cli.cwd / "envelopes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    expected = {envelope_from_json(line).envelope_id: 1 for line in lines}
    assert len(expected) == len(lines)

    first = json.loads(cli.ok("publish", "--file", path.name, "--json"))
    assert (first["published"], first["duplicates"]) == (4, 0)
    published_at = time.monotonic()
    await _wait_consumed(pipeline_env, 4)
    assert _rows_per_id(pipeline_env) == expected

    # Past the stream's 1 s duplicate window, so JetStream most likely stores the lines again
    # and the table's dedup by id is what keeps one row per line.
    await asyncio.sleep(max(0.0, published_at + 2.0 - time.monotonic()))
    second = json.loads(cli.ok("publish", "--file", path.name, "--json"))
    assert second["published"] + second["duplicates"] == 4
    await _wait_consumed(pipeline_env, 4 + second["published"])
    assert _rows_per_id(pipeline_env) == expected

    audit = json.loads(cli.ok("audit", "--json"))
    assert audit["read"] == 4 + second["published"]
    assert audit["missing"] == []
    assert audit["duplicated_total"] == 0
    assert ingester.stop() == 0
