"""Ponix producer: publishes envelopes to JetStream."""
