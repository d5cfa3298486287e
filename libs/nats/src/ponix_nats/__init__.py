"""JetStream connection, provisioning, BatchConsumer and EnvelopeProducer."""
