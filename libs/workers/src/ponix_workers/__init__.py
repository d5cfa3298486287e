"""Worker mode: the envelope processor in worker processes, behind the consumer's
``BatchProcessor`` (``INGESTER_WORKERS`` >= 1), so one ingester uses more than one core.

The ingester wires it up: a :class:`WorkerMetrics` directory, a :class:`WorkerPool` as the
consumer's processor, ``run`` as a runner process and ``close`` as a closer. Nothing outside this
package imports its modules directly: use the names re-exported here.
"""

from ponix_workers.errors import (
    WorkerError,
    WorkerExitedError,
    WorkerFailedBatchError,
    WorkerStartError,
)
from ponix_workers.metrics import WORKER_METRICS, WorkerMetrics
from ponix_workers.pipe import WorkerConfig, stream_sequence_key
from ponix_workers.pool import WORKER_COMMAND, WorkerPool

__all__ = (
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
