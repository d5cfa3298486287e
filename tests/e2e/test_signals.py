"""Stopping a service the way operators do: a SIGTERM to its whole process group, and a SIGTERM
to PID 1 of a container. Each is one request to stop: the ingester drains (stores and acks what
it holds) and exits 0, never forced.

``kill -- -PGID`` on ``uv run ponix-ingester`` delivers SIGTERM twice: once from the kernel to
every process of the group, once more from uv, which forwards it to its child. The container is
``unshare --pid --fork --mount-proc``: the ingester is PID 1 of a new PID namespace, and
``nsenter`` runs ``kill -TERM 1`` inside it, as ``docker exec ... kill 1`` would. The kernel
delivers a signal sent from inside the namespace to its PID 1 only if a handler is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import clean_environment
from tests.support.pipeline import Pipeline, PipelineClient, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
ENVELOPES = 2_000


class Service:
    """A service started by ``argv`` in its own session, its JSON log lines collected."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            self.text.append(text)
            with contextlib.suppress(ValueError):
                parsed = json.loads(text)
                if isinstance(parsed, dict):
                    self.lines.append(parsed)

    def messages(self, message: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("message") == message]

    async def wait_for(self, message: str, *, within: float) -> dict[str, Any]:
        async def logged() -> dict[str, Any] | None:
            if self.proc.returncode is not None:
                pytest.fail(f"exited {self.proc.returncode} before {message!r}\n{self.tail()}")
            found = self.messages(message)
            return found[0] if found else None

        return await eventually(logged, within=within, what=f"log line {message!r}")

    async def exit_code(self, *, within: float) -> int:
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code

    def tail(self) -> str:
        return "\n".join(self.text[-40:])


@contextlib.asynccontextmanager
async def service(argv: Sequence[str], env: dict[str, str], cwd: Path) -> AsyncIterator[Service]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    child = Service(proc)
    try:
        yield child
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@pytest.fixture
def pipeline(nats_url: str, clickhouse_url: str, unique: str, clickhouse_db: str) -> Pipeline:
    return Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=clickhouse_db,
        HTTP_PORT=0,
    )


async def drain_then_check(child: Service, pipeline: Pipeline, stop: Sequence[str]) -> None:
    """Publish while the ingester runs, send ``stop``, and check it drained and exited 0."""
    await child.wait_for("service started", within=60)
    async with PipelineClient.connect(pipeline) as client:
        ledger = await client.publish_synthetic(ENVELOPES)
        assert not ledger.failed

        async def some_delivered() -> bool:
            return (await client.consumer_info()).delivered.stream_seq > 0

        await eventually(some_delivered, within=30, what="the ingester fetching")
        sender = await asyncio.create_subprocess_exec(*stop)
        assert await sender.wait() == 0
        code = await child.exit_code(within=30)
        after = await client.consumer_info()

    assert code == 0, child.tail()
    stopped = child.messages("runner stopped")
    assert len(stopped) == 1, child.tail()
    assert stopped[0]["forced"] is False
    assert stopped[0]["signal_name"] == "SIGTERM"
    assert not child.messages("forcing shutdown"), child.tail()
    # The drain: whatever was fetched was stored and acked before the exit.
    assert after.num_ack_pending == 0
    assert after.delivered.stream_seq > 0


async def test_kill_minus_pgid_on_uv_run_ponix_ingester_drains_and_exits_0(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    argv = [uv, "run", "--locked", "--project", str(REPO), "ponix-ingester"]
    async with service(argv, clean_environment(**pipeline.env), tmp_path) as child:
        group = os.getpgid(child.proc.pid)
        # As `kill -TERM -- -PGID` does (a fresh Debian has no kill program: it comes with procps).
        kill_group = [
            sys.executable,
            "-c",
            f"import os, signal; os.killpg({group}, signal.SIGTERM)",
        ]
        await drain_then_check(child, pipeline, kill_group)

    # uv forwarded the group's SIGTERM: the second copy was taken for what it is.
    assert child.messages("signal ignored, shutdown already in progress"), child.tail()


def _child_of(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else None


def _namespace_pid(pid: int) -> int:
    """The PID that ``pid`` has in its own (innermost) PID namespace."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("NSpid:")).split()[-1])


async def test_kill_term_1_inside_a_pid_namespace_drains_and_exits_0(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
    if unshare is None or nsenter is None:
        pytest.skip("unshare and nsenter (util-linux) are needed")
    probe = await asyncio.create_subprocess_exec(
        unshare, "--pid", "--fork", "--mount-proc", "true", stderr=asyncio.subprocess.PIPE
    )
    _, refused = await probe.communicate()
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {refused.decode().strip()}")

    argv = [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-m", "ponix_ingester"]
    async with service(argv, clean_environment(**pipeline.env), tmp_path) as child:
        await child.wait_for("service started", within=60)
        pid_one = _child_of(child.proc.pid)
        assert pid_one is not None
        assert _namespace_pid(pid_one) == 1
        term_one = "import os, signal; os.kill(1, signal.SIGTERM)"
        kill_one = [nsenter, "-t", str(pid_one), "-p", "-m", sys.executable, "-c", term_one]
        await drain_then_check(child, pipeline, kill_one)
