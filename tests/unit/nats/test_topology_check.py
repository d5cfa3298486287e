"""compare_topology: which differences are shrinks (refused unless allowed) and how each is
shown, on infos built in memory."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.api import StreamInfo, StreamState

from ponix_config import NatsSettings
from ponix_nats import compare_topology, dlq_stream_config, stream_config

SETTINGS = NatsSettings(max_bytes=1_000_000)


def _info(**config: Any) -> StreamInfo:
    state = StreamState(messages=0, bytes=0, first_seq=0, last_seq=0, consumer_count=0)
    return StreamInfo(config=stream_config(SETTINGS).evolve(**config), state=state)


def _drift(**server: Any) -> dict[str, tuple[str, str, bool]]:
    check = compare_topology(
        SETTINGS,
        stream=_info(**server),
        dlq_stream=StreamInfo(config=dlq_stream_config(SETTINGS), state=_info().state),
        consumer=None,
    )
    assert check.missing == ("consumer",)
    return {c.field: (c.old, c.new, c.shrinks) for c in check.drift}


def test_a_matching_stream_has_no_drift() -> None:
    assert _drift() == {}


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({"num_replicas": 3}, ("3", "1", True)),
        ({"max_age": 30 * 86400.0}, ("2592000s", "604800s", True)),
        ({"max_age": 0.0}, ("unlimited", "604800s", True)),
        ({"max_age": 3600.0}, ("3600s", "604800s", False)),
        ({"max_bytes": -1}, ("unlimited", "1000000", True)),
        ({"max_bytes": 500_000}, ("500000", "1000000", False)),
        ({"max_msg_size": 4 << 20}, ("4194304", "1048576", True)),
        ({"duplicate_window": 600.0}, ("600s", "120s", True)),
        ({"duplicate_window": 0.5}, ("0.5s", "120s", False)),
    ],
)
def test_lowering_a_limit_or_replicas_is_a_shrink_raising_one_is_not(
    server: dict[str, Any], expected: tuple[str, str, bool]
) -> None:
    (field,) = server
    assert _drift(**server) == {field: expected}


def test_subjects_and_storage_are_shown_but_are_not_shrinks() -> None:
    drift = _drift(subjects=["other.>"])
    assert drift == {"subjects": ("other.>", "processed_envelopes.>", False)}
    assert _drift(storage="memory")["storage"] == ("memory", "file", False)
