"""JSON lines from stdin: a bad line is reported with its number and skipped, or with
``--strict`` ends the run with one line and exit 1."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.conftest import PONIX, Cli, one_line_error

pytestmark = pytest.mark.e2e


def _line(device: str, **extra: object) -> str:
    envelope = {
        "organization_id": "acme",
        "end_device_id": device,
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"temperature": 21.5},
        **extra,
    }
    return json.dumps(envelope)


def test_bad_lines_are_skipped_or_stop_a_strict_run(cli: Cli, pipeline_env: dict[str, str]) -> None:
    lines = [_line("d-1"), "{not json", "", _line("d-2"), '{"end_device_id": "d-3"}']
    text = "\n".join(lines) + "\n"
    argv = {"lenient": ["publish", "--file", "-"], "strict": ["publish", "--file", "-", "--strict"]}
    running = {
        name: subprocess.Popen(
            [*PONIX, *args],
            cwd=cli.cwd,
            env={**cli.env, **pipeline_env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in argv.items()
    }
    done = {}
    for name, proc in running.items():
        out, err = proc.communicate(text, timeout=60)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    lenient = done["lenient"]
    assert lenient.returncode == 0, lenient.stderr
    assert lenient.stdout.startswith("published 2 envelopes in ")
    assert lenient.stdout.rstrip().endswith("duplicates: 0, bad lines: 2")
    warnings = lenient.stderr.splitlines()
    assert warnings[0].startswith("warning: envelope.bad_json_line: line 2: not JSON")
    assert warnings[1] == (
        "warning: envelope.bad_json_line: line 5: occurred_at is required (skipped)"
    )

    line = one_line_error(done["strict"])
    assert line.startswith("error: envelope.bad_json_line: line 2: not JSON")
    assert line.endswith("stopped there (--strict), 1 envelope before it was published")
