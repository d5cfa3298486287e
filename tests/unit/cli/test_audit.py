"""The audit's naming of stream messages (the ingester's rule, DLQ copies, redriven copies), its
chunks, how a chunk is settled against the table, and what the report and exit code say."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

import ponix_cli
from ponix_cli.audit import report as audit_report
from ponix_cli.audit import run as audit_run
from ponix_cli.audit.naming import Namer
from ponix_cli.audit.report import (
    AuditReport,
    DeadLettered,
    Duplicate,
    Envelope,
    Findings,
    render_report,
)
from ponix_cli.audit.scan import Chunk, Expected, Scan, settle
from ponix_clickhouse import TimeRange
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


def _scan(dead: dict[int, str] | None = None, chunk_size: int = 1000) -> tuple[Scan, Findings]:
    found = Findings()
    namer = Namer.with_limits(
        max_bytes=1024,
        time_range=TimeRange.for_column_type("DateTime('UTC')"),
        subject_for=lambda org: f"processed_envelopes.{org}",
    )
    return Scan(STREAM, namer, dead or {}, found, chunk_size=chunk_size), found


def _add(scan: Scan, msg: _Msg) -> Chunk | None:
    return scan.add(msg, msg.seq)  # type: ignore[arg-type]


def _ids(chunk: Chunk) -> dict[str, int]:
    return {envelope_id: e.seq for envelope_id, e in chunk.envelopes.items()}


def test_ids_come_from_the_envelope_then_the_msg_id_then_stream_and_sequence() -> None:
    scan, _ = _scan()
    _add(scan, _Msg(_envelope("e-1"), 1, {"Nats-Msg-Id": "e-1"}))
    _add(scan, _Msg(_envelope(), 2, {"Nats-Msg-Id": "m-2"}))
    _add(scan, _Msg(_envelope(), 3))
    assert _ids(scan.take()) == {
        "e-1": 1,
        deterministic_envelope_id("m-2", AT): 2,
        deterministic_envelope_id(f"{STREAM}:3", AT): 3,
    }


def test_dead_letters_and_poison_are_set_apart() -> None:
    scan, found = _scan(dead={2: "envelope.invalid"})
    _add(scan, _Msg(_envelope("e-1"), 1))
    _add(scan, _Msg(b"\xffpoison", 2))
    _add(scan, _Msg(b"x" * 2000, 3))
    assert _ids(scan.take()) == {"e-1": 1}
    assert found.dead_lettered.first == [DeadLettered(2, "envelope.invalid")]
    assert [(p.seq, p.code) for p in found.poison.first] == [(3, "envelope.too_large")]
    assert found.read == 3


def test_an_envelope_on_another_organizations_subject_is_poison() -> None:
    scan, found = _scan()
    _add(scan, _Msg(_envelope("e-1"), 1, subject="processed_envelopes.mallory"))
    assert _ids(scan.take()) == {}
    assert [p.code for p in found.poison.first] == ["envelope.subject_mismatch"]


def test_a_repeated_envelope_is_expected_once_at_its_first_sequence() -> None:
    scan, _ = _scan()
    _add(scan, _Msg(_envelope("e-1"), 1, {"Nats-Msg-Id": "e-1"}))
    _add(scan, _Msg(_envelope("e-1"), 4, {"Nats-Msg-Id": "e-1"}))
    assert _ids(scan.take()) == {"e-1": 1}


def test_the_stream_is_handed_over_in_chunks_of_the_given_size() -> None:
    scan, found = _scan(chunk_size=2)
    handed = [_add(scan, _Msg(_envelope(f"e-{seq}"), seq)) for seq in range(1, 6)]
    chunks = [c for c in handed if c is not None]
    assert [list(_ids(c).values()) for c in chunks] == [[1, 2], [3, 4]]
    assert list(_ids(scan.take()).values()) == [5]
    assert (found.first_seq, found.last_seq, found.read) == (1, 5, 5)


def test_an_original_whose_redriven_copy_is_stored_is_redriven_not_missing() -> None:
    scan, found = _scan()
    _add(scan, _Msg(_envelope(), 5))
    chunk = scan.take()
    copy_id = deterministic_envelope_id(f"redrive:{STREAM}:5", AT)
    assert copy_id in chunk.ids()
    settle(found, chunk, {copy_id: 1}, [], ack_floor=10, reported=set())
    assert (found.redriven, found.missing.total, found.stored) == (1, 0, 0)


def test_an_original_with_a_msg_id_has_no_other_redriven_id() -> None:
    scan, _ = _scan()
    _add(scan, _Msg(_envelope(), 5, {"Nats-Msg-Id": "m-5"}))
    assert scan.take().ids() == [deterministic_envelope_id("m-5", AT)]


def test_absent_ids_are_missing_up_to_the_ack_floor_and_unprocessed_above() -> None:
    scan, found = _scan()
    for seq in (1, 2, 3):
        _add(scan, _Msg(_envelope(f"e-{seq}"), seq, {"Nats-Msg-Id": f"e-{seq}"}))
    settle(found, scan.take(), {"e-1": 1}, [], ack_floor=2, reported=set())
    assert found.stored == 1
    assert found.missing.first == [Envelope(2, "e-2")]
    assert found.unprocessed.first == [Envelope(3, "e-3")]


def test_a_duplicate_met_in_two_chunks_is_listed_once() -> None:
    found, reported = Findings(), set[str]()
    twice = [Duplicate("e-1", 2)]
    for seq in (1, 9):
        chunk = Chunk({"e-1": Expected(seq, "e-1")})
        settle(found, chunk, {"e-1": 2}, twice, ack_floor=10, reported=reported)
    assert found.duplicated.total == 1


def test_lists_keep_their_first_examples_while_totals_keep_counting() -> None:
    found = Findings()
    for seq in range(audit_report.LISTED + 5):
        found.missing.add(Envelope(seq, f"e-{seq}"))
    assert found.missing.total == audit_report.LISTED + 5
    assert len(found.missing.first) == audit_report.LISTED


def _report(**changes: object) -> AuditReport:
    found = Findings(read=5000, expected=4998, stored=4998, first_seq=1, last_seq=5000)
    found.dead_lettered.add(DeadLettered(7, "envelope.invalid"))
    for name, items in changes.items():
        for item in items:  # type: ignore[attr-defined]
            getattr(found, name).add(item)
    return AuditReport.of(
        found,
        stream=STREAM,
        table="ponix.processed_envelopes",
        dlq_stream=f"{STREAM}_DLQ",
        range_="from the first message",
        ack_floor=5000,
        seconds=0.5,
    )


def test_a_clean_audit_reads_ok() -> None:
    report = _report()
    assert report.ok
    text = render_report(report)
    assert text.endswith("OK: every envelope read is stored exactly once.")
    assert "dead-lettered                1" in text


def test_missing_or_duplicated_fails_and_lists_examples() -> None:
    report = _report(
        missing=[Envelope(12, "e-12")],
        duplicated=[Duplicate("e-3", 2)],
        unprocessed=[Envelope(5001, "e-5001")],
    )
    assert not report.ok
    text = render_report(report)
    assert "seq 12  id e-12" in text
    assert "id e-3  rows 2" in text
    assert text.endswith("FAILED: 1 missing, 1 duplicated")
    body = report.to_json()
    assert '"ok": false' in body
    assert '"missing_total": 1' in body


def test_unprocessed_envelopes_alone_do_not_fail() -> None:
    assert _report(unprocessed=[Envelope(5001, "e-5001")]).ok


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        ponix_cli.main(argv)
    code = exited.value.code
    return code if isinstance(code, int) else (0 if code is None else 1)


@pytest.mark.parametrize(("findings", "code"), [({}, 0), ({"missing": [Envelope(1, "e")]}, 3)])
def test_findings_exit_3_and_a_clean_audit_exits_0(
    monkeypatch: pytest.MonkeyPatch, findings: dict[str, list[Envelope]], code: int
) -> None:
    async def fake(*_args: object, **_kwargs: object) -> AuditReport:
        return _report(**findings)

    monkeypatch.setattr(audit_run, "run_audit", fake)
    assert _exit_code(["audit"]) == code


def test_since_and_from_seq_are_one_or_the_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["audit", "--since", "1h", "--from-seq", "5"]) == 2
    assert "give --since or --from-seq, not both" in capsys.readouterr().err
    assert _exit_code(["audit", "--since", "yesterday"]) == 2
    assert "neither a duration" in capsys.readouterr().err
