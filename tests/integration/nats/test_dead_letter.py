"""The DLQ: copies deduplicated by source sequence, listed back, and redriven idempotently."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats import (
    DeadLetterNotFoundError,
    DeadLetterPublisher,
    get_dead_letter,
    list_dead_letters,
    redrive,
)

pytestmark = pytest.mark.integration


async def _fetch_all(js: JetStreamContext, settings: NatsSettings, n: int) -> list:  # type: ignore[type-arg]
    psub = await js.pull_subscribe_bind(durable=settings.consumer, stream=settings.stream)
    try:
        return await psub.fetch(n, timeout=2)
    finally:
        await psub.unsubscribe()


async def test_a_retried_copy_is_stored_once(
    js: JetStreamContext, provisioned: NatsSettings
) -> None:
    settings = provisioned
    await js.publish(settings.subject_for("acme"), b"poison", headers={"Nats-Msg-Id": "e-1"})
    [msg] = await _fetch_all(js, settings, 1)
    dead_letters = DeadLetterPublisher(js, settings)
    await dead_letters.publish(msg, code="envelope.invalid", reason="organization_id is empty")
    await dead_letters.publish(msg, code="envelope.invalid", reason="organization_id is empty")
    await msg.term()
    assert (await js.stream_info(settings.dlq_stream)).state.messages == 1


async def test_list_returns_letters_oldest_first_with_original_headers(
    js: JetStreamContext, provisioned: NatsSettings
) -> None:
    settings = provisioned
    for i in range(3):
        await js.publish(
            settings.subject_for("acme"),
            f"p{i}".encode(),
            headers={"Nats-Msg-Id": f"e-{i}", "Trace-Id": f"trace-{i}"},
        )
    msgs = await _fetch_all(js, settings, 3)
    dead_letters = DeadLetterPublisher(js, settings)
    errors = await dead_letters.publish_many(
        [(m, "envelope.invalid", "bad\nmultiline") for m in msgs]
    )
    assert errors == [None, None, None]

    letters = await list_dead_letters(js, settings, limit=2)
    assert [letter.payload for letter in letters] == [b"p0", b"p1"]
    assert letters[0].headers == {"Trace-Id": "trace-0"}
    assert letters[0].reason == "bad multiline"
    assert letters[0].msg_id == "e-0"
    rest = await list_dead_letters(js, settings, limit=10, start_seq=letters[-1].dlq_seq + 1)
    assert [letter.payload for letter in rest] == [b"p2"]
    with pytest.raises(DeadLetterNotFoundError) as info:
        await get_dead_letter(js, settings, 999)
    assert info.value.code == "nats.dead_letter_not_found"


async def test_redrive_republishes_then_deletes_the_letter(
    js: JetStreamContext, provisioned: NatsSettings
) -> None:
    settings = provisioned
    # No Nats-Msg-Id on the original: the redrive's id comes from its stream and sequence.
    await js.publish(settings.subject_for("acme"), b"orphan", headers={"Trace-Id": "t-9"})
    [msg] = await _fetch_all(js, settings, 1)
    await DeadLetterPublisher(js, settings).publish(msg, code="x.y", reason="bad")
    await msg.term()
    [letter] = await list_dead_letters(js, settings)

    [done] = await redrive(js, settings, letter.dlq_seq)
    assert done.status == "republished"
    assert done.stream_seq == 2
    assert await list_dead_letters(js, settings) == []
    again = await js.get_msg(settings.stream, done.stream_seq)
    assert again.data == b"orphan"
    assert again.subject == settings.subject_for("acme")
    assert again.headers is not None
    assert again.headers["Nats-Msg-Id"] == f"redrive:{settings.stream}:1"
    assert again.headers["Trace-Id"] == "t-9"
    assert again.headers["Ponix-Redriven-From"] == f"{settings.dlq_stream}:{letter.dlq_seq}"
    assert await redrive(js, settings, "all") == []


async def test_redrive_inside_the_duplicate_window_is_deferred_not_lost(
    js: JetStreamContext, provisioned: NatsSettings
) -> None:
    settings = provisioned
    await js.publish(settings.subject_for("acme"), b"early", headers={"Nats-Msg-Id": "e-early"})
    [msg] = await _fetch_all(js, settings, 1)
    await DeadLetterPublisher(js, settings).publish(msg, code="x.y", reason="bad")
    await msg.term()

    [done] = await redrive(js, settings, "all")
    # JetStream would drop the republish as the very message that failed: keep the letter.
    assert done.status == "deferred"
    assert len(await list_dead_letters(js, settings)) == 1
    assert (await js.stream_info(settings.stream)).state.messages == 1


async def test_a_copy_too_large_for_the_server_is_trimmed_and_the_connection_survives(
    nc: Client, js: JetStreamContext, provisioned: NatsSettings
) -> None:
    """The server counts headers and payload against ``max_payload``: the DLQ headers on top of
    an envelope that just fitted would make it close the connection (losing queued acks)."""
    settings = provisioned
    # A stream that takes whatever the server does, so the original can be as large as allowed.
    config = (await js.stream_info(settings.stream)).config
    config.max_msg_size = -1
    await js.update_stream(config)
    big = b"x" * (nc.max_payload - 300)
    await js.publish(settings.subject_for("acme"), big, headers={"Nats-Msg-Id": "big-1"})
    [msg] = await _fetch_all(js, settings, 1)
    dead_letters = DeadLetterPublisher(js, settings, max_payload=lambda: nc.max_payload)
    reason = "envelope.too_large: " + "r" * 900
    await dead_letters.publish(msg, code="envelope.too_large", reason=reason)
    await msg.term()
    assert nc.is_connected
    [letter] = await list_dead_letters(js, settings, limit=10)
    assert letter.truncated_from == len(big)
    assert 0 < len(letter.payload) < len(big)
    assert big.startswith(letter.payload)
    assert letter.msg_id == "big-1"


async def test_a_copy_that_fits_is_stored_whole(
    nc: Client, js: JetStreamContext, provisioned: NatsSettings
) -> None:
    settings = provisioned
    await js.publish(settings.subject_for("acme"), b"small poison", headers={"Nats-Msg-Id": "s"})
    [msg] = await _fetch_all(js, settings, 1)
    dead_letters = DeadLetterPublisher(js, settings, max_payload=lambda: nc.max_payload)
    await dead_letters.publish(msg, code="envelope.invalid", reason="bad")
    [letter] = await list_dead_letters(js, settings, limit=10)
    assert letter.payload == b"small poison"
    assert letter.truncated_from is None
