"""Helpers shared by the integration and fault suites (no fixtures here: see each conftest)."""
