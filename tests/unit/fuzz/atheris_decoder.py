"""Coverage-guided fuzzing of the decoder with atheris (libFuzzer): a script, run by
``test_atheris.py`` as a subprocess because libFuzzer owns the process while it runs.

    python tests/unit/fuzz/atheris_decoder.py -runs=20000 -seed=1 CORPUS_DIR

Anything ``RowBuilder.build`` raises is a crash: libFuzzer stops, writes the input to
``crash-<sha1>`` and exits non-zero.
"""

from __future__ import annotations

import json
import sys

import atheris

# Loaded uninstrumented: only the decoder, ponix_proto and protobuf's Python helpers (Timestamp
# conversions) are worth coverage feedback; instrumenting the clients costs half a minute.
import ponix_clickhouse  # noqa: F401
import ponix_nats  # noqa: F401
import ponix_runner  # noqa: F401
import ponix_telemetry  # noqa: F401

with atheris.instrument_imports(include=["ponix_clickhouse", "ponix_proto", "google.protobuf"]):
    from ponix_clickhouse import Poison, RowBuilder, TimeRange


class Delivery:
    """A fetched message with a Nats-Msg-Id (this script runs alone, outside the tests)."""

    subject = "processed_envelopes.o"
    headers = {"Nats-Msg-Id": "Nats-Msg-Id"}
    metadata = None

    def __init__(self, data: bytes) -> None:
        self.data = data


BUILDERS = (
    RowBuilder(max_bytes=4096, time_range=TimeRange.for_column_type("DateTime")),
    RowBuilder(max_bytes=4096, time_range=TimeRange.for_column_type("DateTime64(3)", 1000)),
)


def test_one_input(data: bytes) -> None:
    for builder in BUILDERS:
        result = builder.build(Delivery(data))  # type: ignore[arg-type]
        if isinstance(result, Poison):
            continue
        json.loads(result[5])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
