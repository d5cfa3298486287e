"""What status, dlq, publish, migrate and dev print, from data built in the test."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from ponix_cli import dev, dlq, migrate, publish, status
from ponix_clickhouse import MigrationReport
from ponix_config import NatsSettings
from ponix_nats import DeadLetter, Redriven
from ponix_proto import pb


def _status(**changes: object) -> status.Status:
    base: dict[str, object] = {
        "nats_url": "nats://127.0.0.1:4222",
        "clickhouse_url": "clickhouse://127.0.0.1:9000",
        "stream": status.StreamState("PROCESSED_ENVELOPES", 5000, 1_800_000, 1, 5000),
        "consumer": status.ConsumerState("clickhouse-writer", 0, 0, 3, 5000),
        "dlq": status.StreamState("PROCESSED_ENVELOPES_DLQ", 2, 400, 1, 2),
        "table": status.TableState(
            "ponix.processed_envelopes",
            rows=5000,
            raw_rows=5004,
            parts=4,
            last_write=datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC),
            last_write_age=3.0,
            server_version="18.16.1",
        ),
    }
    base.update(changes)
    return status.Status(**base)  # type: ignore[arg-type]


def test_status_shows_lag_dlq_rows_and_last_write() -> None:
    text = status.render_status(_status())
    assert "PROCESSED_ENVELOPES: 5,000 messages, 1.7 MiB (seq 1..5000)" in text
    assert "clickhouse-writer: pending 0, ack pending 0, redelivered 3" in text
    assert "dead letters 2 in PROCESSED_ENVELOPES_DLQ" in text
    assert "5,000 exact (FINAL), 5,004 raw" in text
    assert "last write   2026-11-23 10:00:00 UTC (3 s ago)" in text


def test_status_says_what_is_missing_and_what_is_unreachable() -> None:
    fresh = _status(stream=None, consumer=None, dlq=None)
    assert "stream missing" in status.render_status(fresh)
    down = _status(stream=None, consumer=None, dlq=None, table=None, errors=["nats.unreachable"])
    assert status.render_status(down).count("unavailable") == 2
    empty = _status(
        table=status.TableState("ponix.processed_envelopes", 0, 0, 0, None, None, "18.16.1")
    )
    assert "last write   never" in status.render_status(empty)


def test_status_json_has_every_figure() -> None:
    body = json.loads(_status().to_json())
    assert body["consumer"]["pending"] == 0
    assert body["dlq"]["messages"] == 2
    assert body["table"]["rows"] == 5000
    assert body["table"]["last_write"] == "2026-11-23T10:00:00+00:00"
    assert body["errors"] == []


def _envelope_bytes() -> bytes:
    env = pb.ProcessedEnvelope(id="e-1", organization_id="acme", end_device_id="d-1")
    env.occurred_at.FromDatetime(datetime(2026, 11, 23, tzinfo=UTC))
    env.data.update({"temperature": 21.5})
    return env.SerializeToString()


def test_a_payload_preview_is_proto_json_or_the_first_bytes() -> None:
    preview = dlq.payload_preview(_envelope_bytes(), limit=200)
    assert json.loads(preview)["end_device_id"] == "d-1"
    assert dlq.payload_preview(b"\xff\xfe poison").startswith("b'\\xff\\xfe")
    big = dlq.payload_preview(b"\x0a" + b"x" * 5000)
    assert len(big) < 120
    assert big.endswith("KiB)")


def _letter() -> DeadLetter:
    return DeadLetter(
        dlq_seq=7,
        payload=_envelope_bytes(),
        reason="300000 bytes exceeds the limit of 262144",
        code="envelope.too_large",
        stream="PROCESSED_ENVELOPES",
        sequence=42,
        deliveries=1,
        failed_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        subject="processed_envelopes.acme",
        msg_id="e-1",
        headers={"Trace-Id": "t-1"},
    )


def test_a_dead_letter_lists_its_code_source_and_preview() -> None:
    view = dlq.LetterView.of(_letter())
    assert (view.seq, view.code, view.source) == (7, "envelope.too_large", "PROCESSED_ENVELOPES:42")
    assert view.failed_at == "2026-11-23 10:00:00"
    body = dlq.letter_json(_letter())
    assert body["stream_seq"] == 42
    assert body["headers"] == {"Trace-Id": "t-1"}
    assert body["failed_at"] == "2026-11-23T10:00:00+00:00"


def test_a_listed_dead_letter_shows_code_source_reason_and_payload() -> None:
    text = dlq.describe(_letter(), main_stream="PROCESSED_ENVELOPES")
    first, reason, subject, payload = text.splitlines()
    assert first == (
        "#7  envelope.too_large  stream seq 42, 1 delivery, failed 2026-11-23 10:00:00 UTC"
    )
    assert reason == "    reason   300000 bytes exceeds the limit of 262144"
    assert subject == "    subject  processed_envelopes.acme"
    assert payload.startswith('    payload  {"end_device_id":"d-1","occurred_at":')
    other = dlq.describe(_letter(), main_stream="ANOTHER")
    assert "from PROCESSED_ENVELOPES:42" in other


def test_redrive_lines_explain_a_deferred_letter() -> None:
    settings = NatsSettings()
    done = dlq.redrive_line(Redriven(7, "republished", 99), settings)
    assert done == "seq 7: republished to PROCESSED_ENVELOPES as seq 99"
    deferred = dlq.redrive_line(Redriven(7, "deferred", 42), settings)
    assert "duplicate window (2 min)" in deferred
    assert "redrive it again" in deferred


def test_the_publish_summary_counts_new_duplicates_and_bad_lines() -> None:
    summary = publish.PublishSummary(published=4990, duplicates=10, bad_lines=2, seconds=0.8)
    assert summary.text() == (
        "published 4,990 envelopes in 0.8 s (6,250/s); duplicates: 10, bad lines: 2"
    )


async def test_lines_are_numbered_from_one_including_blank_ones() -> None:
    handle = io.StringIO('{"a": 1}\n\n{"b": 2}\n')
    numbered = [pair async for pair in publish._numbered_lines(handle)]
    assert [n for n, _ in numbered] == [1, 2, 3]


def _report(**changes: object) -> MigrationReport:
    base: dict[str, object] = {
        "database": "ponix",
        "server_version": (18, 16, 1),
        "source": Path("migrations"),
        "applied": (),
        "rolled_back": (),
        "already_applied": ("0001_create_processed_envelopes",),
        "pending": (),
    }
    base.update(changes)
    return MigrationReport(**base)  # type: ignore[arg-type]


def test_migrate_says_what_changed_or_that_nothing_had_to() -> None:
    assert migrate.summary(_report()) == (
        "up to date: 1 migration applied (ClickHouse 18.16.1, database ponix)"
    )
    applied = _report(applied=("0001_a",), already_applied=())
    assert migrate.summary(applied) == "applied 0001_a (ClickHouse 18.16.1, database ponix)"
    back = _report(rolled_back=("0001_a",), already_applied=(), pending=("0001_a",))
    assert migrate.summary(back).startswith("rolled back 0001_a")


def test_the_dev_banner_has_urls_exports_and_examples(tmp_path: Path) -> None:
    stack = SimpleNamespace(
        data_dir=tmp_path / ".ponix",
        nats=SimpleNamespace(url="nats://127.0.0.1:4222", host="127.0.0.1", monitor_port=8222),
        clickhouse=SimpleNamespace(
            url="clickhouse://default@127.0.0.1:9000/",
            tcp_port=9000,
            http_url="http://127.0.0.1:8123",
        ),
        env=lambda: {
            "NATS_URL": "nats://127.0.0.1:4222",
            "CLICKHOUSE_URL": "clickhouse://default@127.0.0.1:9000/",
        },
    )
    text = dev.banner(
        stack,  # type: ignore[arg-type]
        tmp_path / ".ponix" / "env",
        _report(applied=("0001_create_processed_envelopes",), already_applied=()),
        rate=10,
        metrics_port=9464,
    )
    assert "nats://127.0.0.1:4222" in text
    assert "native port 9000; HTTP http://127.0.0.1:8123; 18.16.1" in text
    assert "export NATS_URL=nats://127.0.0.1:4222 CLICKHOUSE_URL=" in text
    assert "find the stack through .ponix/env" in text
    assert "http://127.0.0.1:9464/metrics" in text
    assert "ponix publish --count 1000" in text
    assert "10 synthetic envelopes/s" in text
