"""Shared pydantic-settings pieces for every Ponix service."""
