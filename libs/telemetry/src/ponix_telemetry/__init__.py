"""Structured logging, Prometheus metrics and health endpoints."""
