"""Ponix all-in-one: producer and ingester under one runner."""

from ponix_all_in_one.app import PROCESSES, AllInOneSettings, ProcessName, run_all_in_one

__all__ = ("PROCESSES", "AllInOneSettings", "ProcessName", "run_all_in_one")
