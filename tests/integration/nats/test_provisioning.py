"""ensure_jetstream(): create, re-run as a no-op, fix drift, refuse what cannot change, and
tell "unreachable" apart from "missing"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, StorageType

from ponix_config import NatsSettings
from ponix_devstack import NatsServer
from ponix_nats import (
    NatsUnavailableError,
    ProvisioningError,
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


async def test_drifted_limits_and_consumer_knobs_are_updated_in_place(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await ensure_jetstream(js, settings)
    changed = settings.model_copy(
        update={"max_age": 600.0, "max_bytes": 10_000_000, "ack_wait": 7.0, "max_ack_pending": 77}
    )
    topology = await ensure_jetstream(js, changed)
    assert topology.created == ()
    assert set(topology.updated) == {
        "stream.max_age",
        "stream.max_bytes",
        "consumer.ack_wait",
        "consumer.max_ack_pending",
    }
    stream = (await js.stream_info(settings.stream)).config
    assert stream.max_age == pytest.approx(600.0)
    assert stream.max_bytes == 10_000_000
    consumer = (await js.consumer_info(settings.stream, settings.consumer)).config
    assert consumer.ack_wait == pytest.approx(7.0)
    assert consumer.max_ack_pending == 77
    assert (await ensure_jetstream(js, changed)).updated == ()


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
