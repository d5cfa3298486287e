"""Once a service has started, the garbage collector is set for its hot path: start-up's objects
frozen out of full collections, young collections far apart (ponix_service.host's module doc
has the figures)."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence

import pytest

from ponix_config import TelemetrySettings
from ponix_runner import Runner, ShutdownSignal
from ponix_service import serve
from ponix_service.host import GC_YOUNG_THRESHOLD
from ponix_telemetry import ReadinessCheck


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _StopsAtOnce:
    """A component whose one process asks the runner to stop, after noting the collector's
    state as the service runs."""

    def __init__(self) -> None:
        self.frozen = 0
        self.threshold: tuple[int, int, int] | None = None

    def register(self, runner: Runner) -> None:
        async def run(token: ShutdownSignal) -> None:
            self.frozen = gc.get_freeze_count()
            self.threshold = gc.get_threshold()
            runner.shutdown()
            await token.wait()

        runner.add_process("stops at once", run)

    def readiness(self) -> Mapping[str, ReadinessCheck]:
        return {}


@pytest.mark.usefixtures("restored_gc")
async def test_a_started_service_runs_with_start_up_frozen_and_young_collections_apart() -> None:
    component = _StopsAtOnce()
    before = gc.get_threshold()

    async def start() -> Sequence[_StopsAtOnce]:
        assert gc.get_freeze_count() == 0  # nothing is frozen while start-up runs
        return [component]

    result = await serve(start, TelemetrySettings(http_enabled=False))

    assert int(result.exit_code) == 0
    # Start-up's objects (the modules, this test's) are out of the collector's sight.
    assert component.frozen > 10_000
    assert component.threshold == (GC_YOUNG_THRESHOLD, before[1], before[2])
