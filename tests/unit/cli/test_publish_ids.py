"""``ponix publish --file``: a line without ``id`` gets one derived from its content, so the
same file published again names (and so stores) every envelope the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ponix_producer import content_envelope_id, envelope_from_json
from ponix_proto import envelope_id_timestamp, parse_envelope_id, pb

LINE = {
    "organization_id": "acme",
    "end_device_id": "d-1",
    "occurred_at": "2026-11-23T10:00:00.250Z",
    "data": {"temperature": 21.5, "tags": ["a", {"x": 1}]},
}
# Pinned: an id must not change between releases, or a file published before an upgrade and
# again after it would be stored twice.
PINNED = "01a207d9-21fa-7a22-b2cc-ea14f31f7ce1"


def test_the_same_line_twice_gives_the_same_envelope_and_id() -> None:
    text = json.dumps(LINE)
    first, again = envelope_from_json(text), envelope_from_json(text)
    assert first == again
    assert first.envelope_id == PINNED
    parsed = parse_envelope_id(first.envelope_id)
    assert parsed.version == 7
    assert envelope_id_timestamp(first.envelope_id) == datetime(
        2026, 11, 23, 10, 0, 0, 250_000, tzinfo=UTC
    )
    stored = pb.ProcessedEnvelope.FromString(first.payload)
    assert stored.id == first.envelope_id


def test_spelling_of_the_same_envelope_does_not_change_the_id() -> None:
    respelled = {
        "data": {"tags": ["a", {"x": 1.0}], "temperature": 21.5},
        "occurredAt": "2026-11-23T11:00:00.25+01:00",
        "endDeviceId": "d-1",
        "organizationId": "acme",
    }
    assert envelope_from_json(json.dumps(respelled, indent=2)).envelope_id == PINNED
    assert envelope_from_json(json.dumps({**LINE, "id": ""})).envelope_id == PINNED


def test_different_content_gives_a_different_id() -> None:
    ids = {
        envelope_from_json(json.dumps(line)).envelope_id
        for line in (
            LINE,
            {**LINE, "end_device_id": "d-2"},
            {**LINE, "organization_id": "other"},
            {**LINE, "occurred_at": "2026-11-23T10:00:00.251Z"},
            {**LINE, "processed_at": "2026-11-23T10:00:01Z"},
            {**LINE, "data": {"temperature": 21.6, "tags": ["a", {"x": 1}]}},
            {**LINE, "data": {"temperature": 21.5, "tags": [{"x": 1}, "a"]}},
        )
    }
    assert len(ids) == 7


def test_a_given_id_is_kept_and_is_not_part_of_the_content() -> None:
    given = "0190c5e8-0000-7000-8000-000000000001"
    envelope = envelope_from_json(json.dumps({**LINE, "id": given}))
    assert envelope.envelope_id == given
    assert pb.ProcessedEnvelope.FromString(envelope.payload).id == given
    # The content id ignores whatever id the envelope already carries.
    assert content_envelope_id(pb.ProcessedEnvelope.FromString(envelope.payload)) == PINNED
