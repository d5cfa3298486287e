"""The public surface of ponix_ingest is exactly its ``__all__``; nothing else is imported."""

import ponix_ingest

EXPECTED = ("ROW_REJECTED", "EnvelopeProcessor")


def test_all_is_a_tuple_pinned_here() -> None:
    assert isinstance(ponix_ingest.__all__, tuple)
    assert ponix_ingest.__all__ == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in ponix_ingest.__all__:
        assert getattr(ponix_ingest, name) is not None, name
