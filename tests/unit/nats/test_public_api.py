"""The public surface of ponix_nats is exactly its ``__all__``; nothing else is imported."""

import ponix_nats

EXPECTED = (
    "ACK",
    "DEAD_LETTER_FAILED",
    "PROCESSOR_FAILED",
    "Ack",
    "BackpressureProcessor",
    "BatchConsumer",
    "BatchProcessor",
    "DeadLetter",
    "DeadLetterNotFoundError",
    "DeadLetterPublisher",
    "DeadLetters",
    "EnvelopeProducer",
    "FieldChange",
    "Nak",
    "NatsAuthError",
    "NatsError",
    "NatsTlsError",
    "NatsUnavailableError",
    "Outcome",
    "ProcessingResult",
    "ProvisionedTopology",
    "ProvisioningError",
    "PublishAck",
    "PublishError",
    "Redriven",
    "SerializableEnvelope",
    "SettlePolicy",
    "Settled",
    "ShrinkRefusedError",
    "StreamMissingError",
    "Term",
    "TopologyCheck",
    "check_jetstream",
    "compare_topology",
    "connect",
    "consumer_config",
    "consumer_info",
    "decide",
    "dlq_stream_config",
    "ensure_jetstream",
    "get_dead_letter",
    "headers",
    "keep_alive",
    "list_dead_letters",
    "redrive",
    "settle",
    "stream_config",
    "stream_info",
    "tls_context",
)


def test_all_is_a_tuple_pinned_here() -> None:
    assert isinstance(ponix_nats.__all__, tuple)
    assert ponix_nats.__all__ == EXPECTED
    assert len(set(EXPECTED)) == len(EXPECTED)


def test_every_exported_name_exists() -> None:
    for name in ponix_nats.__all__:
        assert getattr(ponix_nats, name) is not None, name


def test_errors_share_one_root() -> None:
    for name in ponix_nats.__all__:
        obj = getattr(ponix_nats, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ponix_nats.NatsError), name
