"""Envelope ids: UUIDv7 (RFC 9562) layout, time order, determinism, strict parsing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponix_proto import (
    ENVELOPE_ID_NAMESPACE,
    deterministic_envelope_id,
    envelope_id_timestamp,
    new_envelope_id,
    parse_envelope_id,
)

_times = st.datetimes(
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001 (bounds of st.datetimes are naive)
    max_value=datetime(9999, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def assert_uuid7(value: str) -> uuid.UUID:
    parsed = uuid.UUID(value)
    assert str(parsed) == value  # canonical: lowercase, hyphenated, 36 characters
    assert parsed.version == 7
    assert value[14] == "7"  # the version nibble
    assert parsed.variant == uuid.RFC_4122
    assert value[19] in "89ab"  # the variant bits 0b10
    return parsed


def test_new_id_is_a_canonical_uuid7_carrying_now() -> None:
    before = datetime.now(UTC)
    value = new_envelope_id()
    after = datetime.now(UTC)

    assert_uuid7(value)
    assert before - timedelta(milliseconds=1) <= envelope_id_timestamp(value) <= after


def test_new_ids_are_unique_and_strictly_increasing_in_creation_order() -> None:
    ids = [new_envelope_id() for _ in range(20_000)]

    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # the string order is the numeric order of canonical UUIDs
    assert [uuid.UUID(i).int for i in ids] == sorted(uuid.UUID(i).int for i in ids)


def test_new_ids_from_many_threads_stay_unique_and_ordered_per_thread() -> None:
    results: list[list[str]] = []

    def make() -> None:
        results.append([new_envelope_id() for _ in range(2_000)])

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(ids == sorted(ids) for ids in results)
    assert len({i for ids in results for i in ids}) == 8_000


def test_id_at_a_given_time_carries_that_time() -> None:
    at = datetime(2026, 11, 23, 8, 59, 1, 123456, tzinfo=UTC)

    value = new_envelope_id(at)

    assert_uuid7(value)
    assert envelope_id_timestamp(value) == datetime(2026, 11, 23, 8, 59, 1, 123000, tzinfo=UTC)
    assert uuid.UUID(value).int >> 80 == 1_795_424_341_123  # unix_ts_ms
    assert value.startswith("01a207a1-4c83-774b-")  # rand_a: 456 µs as 1867/4096 of a ms
    assert new_envelope_id(at) != value  # fresh randomness every time


def test_id_time_accepts_other_zones_and_rejects_naive_or_out_of_range() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert envelope_id_timestamp(new_envelope_id(datetime(2024, 1, 1, 2, tzinfo=plus_two))) == (
        datetime(2024, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        new_envelope_id(datetime(2024, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="range"):
        new_envelope_id(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))


@given(a=_times, b=_times)
def test_ids_sort_by_time(a: datetime, b: datetime) -> None:
    id_a, id_b = new_envelope_id(a), new_envelope_id(b)

    assert_uuid7(id_a)
    assert envelope_id_timestamp(id_a) == a.replace(microsecond=a.microsecond // 1000 * 1000)
    # Different milliseconds: always in time order. Within one millisecond the 12-bit fraction
    # (~244 ns steps) orders times at least 1 µs apart.
    if b - a >= timedelta(microseconds=1):
        assert id_a < id_b


def test_deterministic_id_is_stable_across_calls_processes_and_releases() -> None:
    at = datetime(2026, 11, 23, 8, 59, 1, 123456, tzinfo=UTC)

    first = deterministic_envelope_id("PROCESSED_ENVELOPES:42", at)

    assert first == deterministic_envelope_id("PROCESSED_ENVELOPES:42", at)
    assert_uuid7(first)
    assert envelope_id_timestamp(first) == datetime(2026, 11, 23, 8, 59, 1, 123000, tzinfo=UTC)
    # Pinned: changing these changes the id of every stored seed-era row (duplicates on replay).
    assert str(ENVELOPE_ID_NAMESPACE) == "5d0a6f3e-9b1c-4c7a-8e2f-6a41b3c9d702"
    assert first == "01a207a1-4c83-7e1c-b267-6114dbc699f1"


def test_deterministic_id_depends_on_key_and_time() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    ids = {
        deterministic_envelope_id("PROCESSED_ENVELOPES:1", at),
        deterministic_envelope_id("PROCESSED_ENVELOPES:2", at),
        deterministic_envelope_id("msg-1", at),
        deterministic_envelope_id("msg-1", at + timedelta(milliseconds=1)),
    }

    assert len(ids) == 4
    # Same key, later time: sorts later.
    assert deterministic_envelope_id("k", at) < deterministic_envelope_id(
        "k", at + timedelta(milliseconds=1)
    )


def test_deterministic_id_without_a_time_sorts_first() -> None:
    value = deterministic_envelope_id("PROCESSED_ENVELOPES:7")

    assert_uuid7(value)
    assert value == "00000000-0000-7fae-91e9-5953b6d3038a"
    assert envelope_id_timestamp(value) == datetime(1970, 1, 1, tzinfo=UTC)
    assert value < new_envelope_id(datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC))


@given(key=st.text(max_size=64), at=_times)
def test_deterministic_id_property(key: str, at: datetime) -> None:
    value = deterministic_envelope_id(key, at)

    assert value == deterministic_envelope_id(key, at)
    assert_uuid7(value)
    assert envelope_id_timestamp(value) == at.replace(microsecond=at.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    "value",
    [
        "019AB00B-5DC3-7D2B-83A7-C4E7B3E0B3D2",  # uppercase is still canonical for ClickHouse
        "019ab00b-5dc3-7d2b-83a7-c4e7b3e0b3d2",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",  # a v1: any version is an id
    ],
)
def test_parse_envelope_id_accepts_canonical_uuids(value: str) -> None:
    assert parse_envelope_id(value) == uuid.UUID(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        "019ab00b5dc37d2b83a7c4e7b3e0b3d2",  # hyphen-less
        "{019ab00b-5dc3-7d2b-83a7-c4e7b3e0b3d2}",
        "urn:uuid:019ab00b-5dc3-7d2b-83a7-c4e7b3e0b3d2",
        "019ab00b-5dc3-7d2b-83a7-c4e7b3e0b3dg",
        "019ab00b-5dc37-d2b-83a7-c4e7b3e0b3d2",
        "019ab00b-5dc3-7d2b-83a7-c4e7b3e0b3d2 ",
    ],
)
def test_parse_envelope_id_rejects_everything_else(value: str) -> None:
    with pytest.raises(ValueError, match="canonical"):
        parse_envelope_id(value)


def test_envelope_id_timestamp_needs_a_uuid7() -> None:
    with pytest.raises(ValueError, match="UUIDv7"):
        envelope_id_timestamp(str(uuid.uuid4()))
    with pytest.raises(ValueError, match="canonical"):
        envelope_id_timestamp("nope")
