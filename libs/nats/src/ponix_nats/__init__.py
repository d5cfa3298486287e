"""JetStream connection, provisioning, BatchConsumer and EnvelopeProducer.

Nothing outside this package imports its modules directly: use the names re-exported here.
"""

from ponix_nats import headers
from ponix_nats.connection import connect, tls_context
from ponix_nats.consumer import (
    PROCESSOR_FAILED,
    BackpressureProcessor,
    BatchConsumer,
    BatchProcessor,
    decide,
)
from ponix_nats.dead_letter import (
    DeadLetter,
    DeadLetterPublisher,
    Redriven,
    get_dead_letter,
    list_dead_letters,
    redrive,
)
from ponix_nats.errors import (
    DeadLetterNotFoundError,
    NatsAuthError,
    NatsError,
    NatsTlsError,
    NatsUnavailableError,
    ProvisioningError,
    PublishError,
    ShrinkRefusedError,
    StreamMissingError,
)
from ponix_nats.lookup import consumer_info, stream_info
from ponix_nats.outcome import ACK, Ack, Nak, Outcome, ProcessingResult, Term
from ponix_nats.producer import EnvelopeProducer, PublishAck, SerializableEnvelope
from ponix_nats.provisioning import (
    FieldChange,
    ProvisionedTopology,
    TopologyCheck,
    check_jetstream,
    compare_topology,
    consumer_config,
    dlq_stream_config,
    ensure_jetstream,
    stream_config,
)
from ponix_nats.settle import (
    DEAD_LETTER_FAILED,
    DeadLetters,
    Settled,
    SettlePolicy,
    keep_alive,
    settle,
)

__all__ = (
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
