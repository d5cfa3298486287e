"""The ``ponix`` command line in process: help on every verb, usage errors, and user errors
as one line with exit 1 (never a traceback); a bug keeps its traceback."""

from __future__ import annotations

import os

import pytest
import typer

import ponix_cli
from ponix_cli import bench, query

VERBS = [
    ["dev"],
    ["run"],
    ["produce"],
    ["ingest"],
    ["publish"],
    ["query"],
    ["status"],
    ["migrate"],
    ["provision"],
    ["audit"],
    ["dlq", "list"],
    ["dlq", "redrive"],
    ["stream", "peek"],
]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        ponix_cli.main(argv)
    code = exited.value.code
    return code if isinstance(code, int) else (0 if code is None else 1)


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_explains_itself_with_examples(
    verb: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code([*verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: ponix " + " ".join(verb) in out
    assert "Examples" in out


def test_the_root_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("dev", "run", "produce", "ingest", "publish", "query", "status", "migrate"):
        assert f" {verb} " in out
    assert " provision " in out
    for verb in ("dlq", "audit", "bench"):
        assert f" {verb} " in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ponix ")


def test_publish_needs_exactly_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["publish"]) == 2
    assert _exit_code(["publish", "--count", "3", "--file", "x.jsonl"]) == 2
    assert "exactly one of --count N or --file PATH" in capsys.readouterr().err


def test_redrive_needs_all_or_a_sequence() -> None:
    assert _exit_code(["dlq", "redrive"]) == 2
    assert _exit_code(["dlq", "redrive", "--all", "--seq", "1"]) == 2


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_a_bad_environment_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    os.environ["NATS_MAX_DELIVER"] = "lots"
    assert _exit_code(["dlq", "list"]) == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: config.invalid: NATS_MAX_DELIVER='lots': ")


def test_a_bad_url_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["query", "--clickhouse-url", "http://localhost:8123", "SELECT 1"]) == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: config.invalid: CLICKHOUSE_URL=")
    assert "not a clickhouse://host:port URL" in line


def test_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["publish", "--file", "missing.jsonl", "--nats-url", "nats://127.0.0.1:1"]
    assert _exit_code(argv) == 1
    assert _one_error_line(capsys) == (
        "error: cli.file_unreadable: missing.jsonl: No such file or directory"
    )


def test_a_rollback_off_a_terminal_needs_yes(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["migrate", "--rollback"]) == 1
    line = _one_error_line(capsys)
    assert line.startswith("error: cli.confirmation_required: ")
    assert "pass --yes" in line


def test_an_empty_statement_is_a_usage_error() -> None:
    assert _exit_code(["query", "  ;  "]) == 2


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setattr(query, "_streamed", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        ponix_cli.main(["query", "SELECT 1"])


def test_bench_without_the_member_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}", name="ponix_bench")

    monkeypatch.setattr(bench.importlib, "import_module", missing)
    assert _exit_code(["bench"]) == 1
    line = _one_error_line(capsys)
    assert line == f"error: cli.bench_missing: {bench.INSTALL_HINT}"
    assert "uv sync --all-packages" in line


def test_bench_hands_its_arguments_to_the_benchmark_app(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = typer.Typer()

    @fake.command()
    def run(runs: int = 1, count: int = 10) -> None:
        typer.echo(f"runs={runs} count={count}")

    monkeypatch.setattr(bench, "load_bench_app", lambda: fake)
    assert _exit_code(["bench", "--runs", "2", "--count", "500"]) == 0
    assert capsys.readouterr().out.strip() == "runs=2 count=500"
