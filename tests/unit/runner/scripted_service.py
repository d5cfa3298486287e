"""A small service that test_service_process.py runs as a child process.

It prints one line per event on stdout, so the parent can wait for a line before it signals.
Usage: ``python scripted_service.py clean|forced|draining|failing``.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from ponix_runner import CloserFn, Runner, RunResult, ShutdownToken, run_main


def say(line: str) -> None:
    print(line, flush=True)


async def forever() -> None:
    await asyncio.Event().wait()


async def ready_then_stop(token: ShutdownToken) -> None:
    say("ready")
    await token.wait()
    say("token set")


async def drains(token: ShutdownToken) -> None:
    say("ready")
    await token.wait()
    say("token set")
    await asyncio.sleep(1.0)  # the drain: twice the force budget
    say("drained")


async def hangs_forever(token: ShutdownToken) -> None:
    await forever()


async def fails(token: ShutdownToken) -> None:
    raise RuntimeError("clickhouse unreachable")


def closer(name: str, *, hang: bool = False) -> CloserFn:
    async def close() -> None:
        say(f"closer {name}")
        if hang:
            await forever()

    return close


def build(scenario: str) -> Runner:
    if scenario == "clean":
        runner = Runner(grace=2.0)
        runner.add_process("worker", ready_then_stop)
        runner.add_closer("flush", closer("flush"))
        runner.add_closer("drain", closer("drain"))
    elif scenario == "forced":
        runner = Runner(grace=30.0, force_budget=0.5)
        runner.add_process("watcher", ready_then_stop)
        runner.add_process("stubborn", hangs_forever)
        runner.add_closer("hangs", closer("hangs", hang=True), timeout=30.0)
        runner.add_closer("late", closer("late"))
    elif scenario == "draining":
        runner = Runner(grace=5.0, force_budget=0.5)
        runner.add_process("drains", drains)
        runner.add_closer("flush", closer("flush"))
    elif scenario == "failing":
        runner = Runner(grace=2.0)
        runner.add_process("worker", ready_then_stop)
        runner.add_process("fails", fails)
        runner.add_closer("drain", closer("drain"))
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    return runner


async def service(scenario: str) -> RunResult:
    say(f"loop {type(asyncio.get_running_loop()).__module__}")
    result = await build(scenario).run()
    say(f"reason {result.reason} forced {result.forced}")
    say("closers " + " ".join(f"{c.name}={c.status}" for c in result.closers))
    say("failures " + " ".join(f.name for f in result.failures))
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s %(name)s")
    raise SystemExit(run_main(lambda: service(sys.argv[1])))
