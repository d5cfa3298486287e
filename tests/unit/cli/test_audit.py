"""The audit's naming of stream messages: the ingester's rule, DLQ copies, redriven copies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ponix_cli import audit
from ponix_clickhouse import RowBuilder, TimeRange
from ponix_proto import deterministic_envelope_id, pb

STREAM = "PROCESSED_ENVELOPES"
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@dataclass
class _Seq:
    stream: int


@dataclass
class _Meta:
    stream: str
    sequence: _Seq
    num_pending: int = 0


@dataclass
class _Msg:
    data: bytes
    seq: int
    headers: dict[str, str] | None = field(default=None)
    subject: str = "processed_envelopes.acme"

    @property
    def metadata(self) -> _Meta:
        return _Meta(STREAM, _Seq(self.seq))


def _envelope(envelope_id: str = "") -> bytes:
    env = pb.ProcessedEnvelope(id=envelope_id, organization_id="acme", end_device_id="d-1")
    env.occurred_at.FromDatetime(AT)
    return env.SerializeToString()


def _scan(dead: dict[int, str] | None = None) -> audit._Scan:
    builder = RowBuilder(max_bytes=1024, time_range=TimeRange.for_column_type("DateTime('UTC')"))
    return audit._Scan(STREAM, builder, dead or {})


def test_ids_come_from_the_envelope_then_the_msg_id_then_stream_and_sequence() -> None:
    scan = _scan()
    scan.add(_Msg(_envelope("e-1"), 1, {"Nats-Msg-Id": "e-1"}), 1)  # type: ignore[arg-type]
    scan.add(_Msg(_envelope(), 2, {"Nats-Msg-Id": "m-2"}), 2)  # type: ignore[arg-type]
    scan.add(_Msg(_envelope(), 3), 3)  # type: ignore[arg-type]
    assert scan.expected() == {
        "e-1": 1,
        deterministic_envelope_id("m-2", AT): 2,
        deterministic_envelope_id(f"{STREAM}:3", AT): 3,
    }


def test_dead_letters_and_poison_are_set_apart() -> None:
    scan = _scan(dead={2: "envelope.invalid"})
    scan.add(_Msg(_envelope("e-1"), 1), 1)  # type: ignore[arg-type]
    scan.add(_Msg(b"\xffpoison", 2), 2)  # type: ignore[arg-type]
    scan.add(_Msg(b"x" * 2000, 3), 3)  # type: ignore[arg-type]
    assert scan.expected() == {"e-1": 1}
    assert scan.dead_lettered == [audit.DeadLettered(2, "envelope.invalid")]
    assert [(p.seq, p.code) for p in scan.poison] == [(3, "envelope.too_large")]
    assert scan.read == 3


def test_a_redriven_copy_replaces_an_original_that_had_no_msg_id() -> None:
    scan = _scan()
    scan.add(_Msg(_envelope(), 5), 5)  # type: ignore[arg-type]
    redriven = {"Nats-Msg-Id": f"redrive:{STREAM}:5", "Ponix-Redriven-From": "DLQ:1"}
    scan.add(_Msg(_envelope(), 9, redriven), 9)  # type: ignore[arg-type]
    expected = scan.expected()
    assert expected == {deterministic_envelope_id(f"redrive:{STREAM}:5", AT): 9}
    assert scan.redriven == 1


def test_a_repeated_envelope_is_expected_once_at_its_first_sequence() -> None:
    scan = _scan()
    scan.add(_Msg(_envelope("e-1"), 1, {"Nats-Msg-Id": "e-1"}), 1)  # type: ignore[arg-type]
    scan.add(_Msg(_envelope("e-1"), 4, {"Nats-Msg-Id": "e-1"}), 4)  # type: ignore[arg-type]
    assert scan.expected() == {"e-1": 1}


def _report(**changes: object) -> audit.AuditReport:
    base: dict[str, object] = {
        "stream": STREAM,
        "table": "ponix.processed_envelopes",
        "dlq_stream": f"{STREAM}_DLQ",
        "first_seq": 1,
        "last_seq": 5000,
        "read": 5000,
        "ack_floor": 5000,
        "expected": 4998,
        "stored": 4998,
        "redriven": 0,
        "seconds": 0.5,
        "dead_lettered": [audit.DeadLettered(7, "envelope.invalid")],
    }
    base.update(changes)
    return audit.AuditReport(**base)  # type: ignore[arg-type]


def test_a_clean_audit_reads_ok() -> None:
    report = _report()
    assert report.ok
    text = audit.render_report(report)
    assert text.endswith("OK: every envelope the stream retains is stored exactly once.")
    assert "dead-lettered                1" in text


def test_missing_or_duplicated_fails_and_lists_examples() -> None:
    report = _report(
        missing=[audit.Envelope(12, "e-12")],
        duplicated=[audit.Duplicate("e-3", 2)],
        duplicated_total=1,
        unprocessed=[audit.Envelope(5001, "e-5001")],
    )
    assert not report.ok
    text = audit.render_report(report)
    assert "seq 12  id e-12" in text
    assert "id e-3  rows 2" in text
    assert text.endswith("FAILED: 1 missing, 1 duplicated")
    assert '"ok": false' in report.to_json()


def test_unprocessed_envelopes_alone_do_not_fail() -> None:
    assert _report(unprocessed=[audit.Envelope(5001, "e-5001")]).ok
