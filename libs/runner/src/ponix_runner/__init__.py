"""Supervisor for named asyncio processes with ordered, bounded closers."""
