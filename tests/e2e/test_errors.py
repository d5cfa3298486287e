"""User mistakes end in one line, ``error: <code>: <reason>``, exit 1, and no traceback."""

from __future__ import annotations

import subprocess

import pytest

from ponix_devstack import free_port
from tests.e2e.conftest import PONIX, Cli, one_line_error

pytestmark = pytest.mark.e2e


def test_mistakes_are_one_line_each(cli: Cli, clickhouse_url: str) -> None:
    dead = free_port()
    stale = cli.cwd / "stale"
    (stale / ".ponix").mkdir(parents=True)
    # What a `ponix dev` killed with SIGKILL leaves behind.
    (stale / ".ponix" / "env").write_text(f"export NATS_URL=nats://127.0.0.1:{dead}\n")
    cases = {
        "dead port": (
            ["query", "SELECT 1", "--clickhouse-url", f"clickhouse://127.0.0.1:{dead}"],
            {},
            cli.cwd,
        ),
        "bad env value": (["status"], {"NATS_MAX_DELIVER": "often"}, cli.cwd),
        "syntax error": (["query", "SELEC 1"], {"CLICKHOUSE_URL": clickhouse_url}, cli.cwd),
        "no clickhouse": (["dev"], {"PONIX_CLICKHOUSE_BINARY": str(cli.cwd / "nowhere")}, cli.cwd),
        "stale dev file": (["dlq", "list"], {}, stale),
    }
    # Independent processes: run them side by side, the suite has a time budget.
    running = {
        name: subprocess.Popen(
            [*PONIX, *argv],
            cwd=cwd,
            env={**cli.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (argv, env, cwd) in cases.items()
    }
    lines = {}
    for name, proc in running.items():
        out, err = proc.communicate(timeout=60)
        lines[name] = one_line_error(
            subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        )

    assert lines["dead port"].startswith(
        f"error: clickhouse.unreachable: clickhouse://127.0.0.1:{dead}"
    )
    assert lines["bad env value"].startswith("error: config.invalid: NATS_MAX_DELIVER='often': ")
    assert lines["syntax error"].startswith("error: clickhouse.query_failed: Code 62: Syntax error")
    assert lines["no clickhouse"].startswith(
        "error: devstack.clickhouse_missing: ClickHouse not found"
    )
    assert "apt-get install clickhouse-server" in lines["no clickhouse"]
    assert lines["stale dev file"].startswith(f"error: nats.unreachable: nats://127.0.0.1:{dead}")
    assert "is `ponix dev` still running?" in lines["stale dev file"]
    assert not (cli.cwd / ".ponix").exists()  # `ponix dev` failed before creating anything
