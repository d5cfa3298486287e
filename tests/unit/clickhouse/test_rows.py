"""The row builder binds an envelope's organization to the subject it came on, and tells an
absent timestamp from one set to the epoch."""

from __future__ import annotations

from ponix_clickhouse import INVALID, SUBJECT_MISMATCH, Poison, RowBuilder, TimeRange
from ponix_config import NatsSettings
from ponix_proto import pb
from tests.support.deliveries import FakeDelivery

NATS = NatsSettings()
RANGE = TimeRange.for_column_type("DateTime('UTC')")


def payload(organization_id: str) -> bytes:
    env = pb.ProcessedEnvelope(id="e-1", organization_id=organization_id, end_device_id="d")
    env.occurred_at.seconds = 1_790_000_000
    return env.SerializeToString()


def bound() -> RowBuilder:
    return RowBuilder(max_bytes=4096, time_range=RANGE, subject_for=NATS.subject_for)


def test_an_envelope_on_its_own_organizations_subject_is_a_row() -> None:
    row = bound().build(FakeDelivery(payload("acme"), subject=NATS.subject_for("acme")))
    assert isinstance(row, tuple)
    assert row[1] == "acme"


def test_an_envelope_on_another_organizations_subject_is_poison() -> None:
    built = bound().build(FakeDelivery(payload("acme"), subject=NATS.subject_for("globex")))
    assert isinstance(built, Poison)
    assert built.code == SUBJECT_MISMATCH
    assert "'acme'" in built.reason
    assert "processed_envelopes.globex" in built.reason


def test_an_organization_with_characters_a_subject_cannot_hold_matches_its_own_subject() -> None:
    subject = NATS.subject_for("acme.eu west")
    assert subject == "processed_envelopes.acme_eu_west"
    assert isinstance(bound().build(FakeDelivery(payload("acme.eu west"), subject=subject)), tuple)


def test_without_binding_the_payloads_organization_is_stored_whatever_the_subject() -> None:
    builder = RowBuilder(max_bytes=4096, time_range=RANGE)
    row = builder.build(FakeDelivery(payload("acme"), subject=NATS.subject_for("globex")))
    assert isinstance(row, tuple)
    assert row[1] == "acme"


def test_an_occurred_at_set_to_the_epoch_is_a_time_and_a_missing_one_is_poison() -> None:
    builder = RowBuilder(max_bytes=4096, time_range=RANGE)
    at_epoch = pb.ProcessedEnvelope(id="e-1", end_device_id="d")
    at_epoch.occurred_at.SetInParent()
    row = builder.build(FakeDelivery(at_epoch.SerializeToString()))
    assert isinstance(row, tuple)
    assert row[3:5] == (0, 0)
    missing = pb.ProcessedEnvelope(id="e-2", end_device_id="d")
    built = builder.build(FakeDelivery(missing.SerializeToString()))
    assert built == Poison(INVALID, "occurred_at is missing")


def test_a_missing_processed_at_is_the_occurred_at_and_one_set_to_the_epoch_is_kept() -> None:
    builder = RowBuilder(max_bytes=4096, time_range=RANGE)
    env = pb.ProcessedEnvelope(id="e-1", end_device_id="d")
    env.occurred_at.seconds = 1_790_000_000
    row = builder.build(FakeDelivery(env.SerializeToString()))
    assert isinstance(row, tuple)
    assert row[3:5] == (1_790_000_000, 1_790_000_000)
    env.processed_at.SetInParent()
    row = builder.build(FakeDelivery(env.SerializeToString()))
    assert isinstance(row, tuple)
    assert row[3:5] == (1_790_000_000, 0)
