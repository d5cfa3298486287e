"""The public surface of ponix_workers is exactly its ``__all__``; nothing else is imported."""

import ponix_workers

EXPECTED = (
    "WORKER_COMMAND",
    "WORKER_METRICS",
    "WorkerConfig",
    "WorkerError",
    "WorkerExitedError",
    "WorkerFailedBatchError",
    "WorkerMetrics",
    "WorkerPool",
    "WorkerStartError",
    "stream_sequence_key",
)


def test_all_is_a_tuple_pinned_here() -> None:
    assert isinstance(ponix_workers.__all__, tuple)
    assert ponix_workers.__all__ == EXPECTED
    assert len(set(EXPECTED)) == len(EXPECTED)


def test_every_exported_name_exists() -> None:
    for name in ponix_workers.__all__:
        assert getattr(ponix_workers, name) is not None, name


def test_errors_share_one_root_and_carry_a_code() -> None:
    for name in ponix_workers.__all__:
        obj = getattr(ponix_workers, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ponix_workers.WorkerError), name
            assert obj.code.startswith("workers."), name
