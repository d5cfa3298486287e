"""ensure_jetstream(): create, re-run as a no-op, fix drift, refuse what cannot change or would
shrink, log each change, and tell "unreachable" apart from "missing"; check_jetstream() only
reports."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, StorageType
from nats.js.errors import NotFoundError

from ponix_config import NatsSettings
from ponix_devstack import NatsServer
from ponix_nats import (
    NatsUnavailableError,
    ProvisioningError,
    ShrinkRefusedError,
    StreamMissingError,
    check_jetstream,
    connect,
    consumer_config,
    ensure_jetstream,
    stream_config,
)

pytestmark = pytest.mark.integration


async def test_creates_stream_dlq_and_consumer_as_configured(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    topology = await ensure_jetstream(js, settings)
    assert topology.created == ("stream", "dlq_stream", "consumer")
    assert topology.updated == ()

    stream = (await js.stream_info(settings.stream)).config
    assert stream.subjects == [f"{settings.subject_prefix}.>"]
    assert stream.storage == StorageType.MEMORY
    assert stream.duplicate_window == pytest.approx(settings.duplicate_window)
    assert stream.max_age == pytest.approx(settings.max_age)
    assert stream.max_msg_size == settings.max_msg_size

    dlq = (await js.stream_info(settings.dlq_stream)).config
    assert dlq.subjects == [settings.dlq_subject]
    assert dlq.max_age == pytest.approx(settings.dlq_max_age)

    consumer = (await js.consumer_info(settings.stream, settings.consumer)).config
    assert consumer.durable_name == settings.consumer
    assert consumer.ack_policy == AckPolicy.EXPLICIT
    # The seed's stream bound X.* while its consumer filtered X.>; ours are the same subject.
    assert consumer.filter_subject == stream.subjects[0]
    assert consumer.ack_wait == pytest.approx(settings.ack_wait)
    # The ingester counts deliveries; the server never drops a message before its DLQ copy.
    assert consumer.max_deliver == -1
    assert consumer.max_ack_pending == settings.max_ack_pending


async def test_rerunning_is_a_no_op(js: JetStreamContext, settings: NatsSettings) -> None:
    await ensure_jetstream(js, settings)
    before = await js.stream_info(settings.stream)
    again = await ensure_jetstream(js, settings)
    assert again.created == ()
    assert again.updated == ()
    assert not again.changed
    after = await js.stream_info(settings.stream)
    assert after.created == before.created


async def test_grown_limits_and_consumer_knobs_are_updated_in_place_and_logged(
    js: JetStreamContext, settings: NatsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    limited = settings.model_copy(update={"max_bytes": 10_000_000})
    await ensure_jetstream(js, limited)
    grown = limited.model_copy(
        update={"max_age": 7200.0, "max_bytes": 20_000_000, "ack_wait": 7.0, "max_ack_pending": 77}
    )
    with caplog.at_level(logging.INFO, logger="ponix_nats.provisioning"):
        topology = await ensure_jetstream(js, grown)
    assert topology.created == ()
    assert set(topology.updated) == {
        "stream.max_age",
        "stream.max_bytes",
        "consumer.ack_wait",
        "consumer.max_ack_pending",
    }
    stream = (await js.stream_info(settings.stream)).config
    assert stream.max_age == pytest.approx(7200.0)
    assert stream.max_bytes == 20_000_000
    consumer = (await js.consumer_info(settings.stream, settings.consumer)).config
    assert consumer.ack_wait == pytest.approx(7.0)
    assert consumer.max_ack_pending == 77
    assert (await ensure_jetstream(js, grown)).updated == ()

    logged = {
        (r.what, r.target, r.field, r.old, r.new)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "jetstream config changed"
    }
    assert logged == {
        ("stream", settings.stream, "max_age", "3600s", "7200s"),
        ("stream", settings.stream, "max_bytes", "10000000", "20000000"),
        ("consumer", settings.consumer, "ack_wait", "5s", "7s"),
        ("consumer", settings.consumer, "max_ack_pending", "20000", "77"),
    }


async def test_shrinking_limits_is_refused_and_changes_nothing(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await ensure_jetstream(js, settings)
    before = (await js.stream_info(settings.stream)).config
    shrunk = settings.model_copy(
        update={
            "max_age": 600.0,
            "duplicate_window": 30.0,
            "max_msg_size": 1024,
            "max_bytes": 10_000_000,
            "ack_wait": 9.0,  # a change that is allowed, refused along with the rest
        }
    )
    with pytest.raises(ShrinkRefusedError) as info:
        await ensure_jetstream(js, shrunk)
    assert info.value.code == "nats.shrink_refused"
    assert set(info.value.fields) == {
        "stream.max_age",
        "stream.duplicate_window",
        "stream.max_msg_size",
        "stream.max_bytes",
        "dlq_stream.duplicate_window",
    }
    assert "stream.max_age 3600s -> 600s" in str(info.value)
    assert "NATS_ALLOW_SHRINK" in str(info.value)
    assert "\n" not in str(info.value)
    assert (await js.stream_info(settings.stream)).config == before
    consumer = (await js.consumer_info(settings.stream, settings.consumer)).config
    assert consumer.ack_wait == pytest.approx(settings.ack_wait)


async def test_a_shrink_is_applied_when_allowed_by_argument_or_setting(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await ensure_jetstream(js, settings)
    shorter = settings.model_copy(update={"max_age": 600.0})
    topology = await ensure_jetstream(js, shorter, allow_shrink=True)
    assert topology.updated == ("stream.max_age",)
    assert [str(c) for c in topology.changes] == ["stream.max_age 3600s -> 600s"]
    assert topology.changes[0].shrinks

    shortest = settings.model_copy(update={"max_age": 300.0, "allow_shrink": True})
    assert (await ensure_jetstream(js, shortest)).updated == ("stream.max_age",)
    assert (await js.stream_info(settings.stream)).config.max_age == pytest.approx(300.0)
    with pytest.raises(ShrinkRefusedError):  # the argument wins over the setting
        await ensure_jetstream(
            js, shortest.model_copy(update={"max_age": 60.0}), allow_shrink=False
        )


async def test_check_reports_missing_and_drifted_pieces_and_changes_nothing(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    check = await check_jetstream(js, settings)
    assert check.missing == ("stream", "dlq_stream", "consumer")
    with pytest.raises(StreamMissingError) as missing:
        check.require_stream()
    assert missing.value.code == "nats.stream_missing"
    with pytest.raises(NotFoundError):
        await js.stream_info(settings.stream)

    await ensure_jetstream(js, settings.model_copy(update={"max_age": 7200.0}))
    before = await js.stream_info(settings.stream)
    check = await check_jetstream(js, settings)
    assert check.require_stream() is check
    assert check.missing == ()
    assert [str(c) for c in check.drift] == ["stream.max_age 7200s -> 3600s"]
    assert check.drift[0].shrinks
    assert check.summary() == "stream.max_age is 7200s (settings: 3600s)"
    assert (await js.stream_info(settings.stream)).config == before.config


async def test_a_server_side_max_deliver_from_an_older_release_is_lifted(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await js.add_stream(stream_config(settings))
    await js.add_consumer(
        settings.stream, consumer_config(settings).evolve(max_deliver=settings.max_deliver)
    )
    topology = await ensure_jetstream(js, settings)
    assert topology.created == ("dlq_stream",)
    assert topology.updated == ("consumer.max_deliver",)
    consumer = (await js.consumer_info(settings.stream, settings.consumer)).config
    assert consumer.max_deliver == -1


async def test_seed_style_subjects_are_widened_to_the_prefix(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await js.add_stream(stream_config(settings).evolve(subjects=[f"{settings.subject_prefix}.*"]))
    topology = await ensure_jetstream(js, settings)
    assert "stream.subjects" in topology.updated
    stream = (await js.stream_info(settings.stream)).config
    assert stream.subjects == [f"{settings.subject_prefix}.>"]


async def test_storage_change_is_a_conflict_naming_the_field(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await ensure_jetstream(js, settings)
    with pytest.raises(ProvisioningError) as info:
        await ensure_jetstream(js, settings.model_copy(update={"storage": "file"}))
    assert info.value.code == "nats.stream_conflict"
    assert info.value.fields == ("storage",)
    assert info.value.stream == settings.stream
    assert "storage" in str(info.value)
    assert "\n" not in str(info.value)


async def test_subjects_taken_by_another_stream_are_a_conflict(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    squatter = f"{settings.stream}_OTHER"
    await js.add_stream(name=squatter, subjects=[f"{settings.subject_prefix}.acme"])
    try:
        with pytest.raises(ProvisioningError) as info:
            await ensure_jetstream(js, settings)
        assert info.value.fields == ("subjects",)
        assert "overlap" in str(info.value)
    finally:
        await js.delete_stream(squatter)


async def test_push_consumer_with_our_name_is_a_conflict(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await ensure_jetstream(js, settings)
    await js.delete_consumer(settings.stream, settings.consumer)
    await js.add_consumer(
        settings.stream, durable_name=settings.consumer, deliver_subject="push.somewhere"
    )
    with pytest.raises(ProvisioningError) as info:
        await ensure_jetstream(js, settings)
    assert info.value.consumer == settings.consumer
    assert "deliver_subject" in info.value.fields


async def test_server_without_jetstream_is_unavailable_not_missing(
    nats_server_factory: Callable[..., NatsServer], settings: NatsSettings
) -> None:
    server = nats_server_factory(jetstream=False)
    plain = settings.model_copy(update={"url": server.url})
    nc = await connect(plain, name="ponix-test")
    try:
        with pytest.raises(NatsUnavailableError) as info:
            await ensure_jetstream(nc.jetstream(timeout=1.0), plain)
        assert "jetstream" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        await nc.close()


async def test_server_that_stopped_answering_is_unavailable(
    nats_server: NatsServer, nc: Client, settings: NatsSettings
) -> None:
    nats_server.pause()
    try:
        with pytest.raises(NatsUnavailableError, match="timed out"):
            await ensure_jetstream(nc.jetstream(timeout=0.3), settings)
    finally:
        nats_server.resume()


async def test_a_setting_the_server_refuses_names_its_field(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    one_node = settings.model_copy(update={"replicas": 3})
    with pytest.raises(ProvisioningError) as info:
        await ensure_jetstream(js, one_node)
    assert info.value.fields == ("num_replicas",)
    window = settings.model_copy(update={"max_age": 10.0, "duplicate_window": 60.0})
    with pytest.raises(ProvisioningError) as info:
        await ensure_jetstream(js, window)
    assert info.value.fields == ("duplicate_window",)
