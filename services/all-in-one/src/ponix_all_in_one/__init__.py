"""Ponix all-in-one: producer and ingester under one runner."""
