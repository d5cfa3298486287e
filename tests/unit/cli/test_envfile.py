"""``.ponix/env``: how ``ponix dev`` hands its URLs to the other verbs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ponix_cli import envfile


def test_parse_reads_exports_quotes_and_skips_comments() -> None:
    text = """
    # a comment
    export NATS_URL=nats://127.0.0.1:4222
    CLICKHOUSE_URL='clickhouse://default@127.0.0.1:9000/'
    QUOTED="a b"  # trailing comment
    not a line
    =nothing
    """
    assert envfile.parse_env(text) == {
        "NATS_URL": "nats://127.0.0.1:4222",
        "CLICKHOUSE_URL": "clickhouse://default@127.0.0.1:9000/",
        "QUOTED": "a b",
    }


def test_the_written_file_is_shell_syntax_that_parses_back(tmp_path: Path) -> None:
    path = tmp_path / ".ponix" / "env"
    values = {"NATS_URL": "nats://127.0.0.1:4222", "CLICKHOUSE_URL": "clickhouse://u:p w@h:9000/"}
    envfile.write_env_file(path, values, pid=1234)
    parsed = envfile.read_env_file(path)
    assert parsed["NATS_URL"] == values["NATS_URL"]
    assert parsed["CLICKHOUSE_URL"] == values["CLICKHOUSE_URL"]
    assert envfile.writer_pid(parsed) == 1234
    shell = subprocess.run(
        ["sh", "-c", f'. "{path}" && printf %s "$CLICKHOUSE_URL"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == values["CLICKHOUSE_URL"]


def test_only_the_writer_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "env"
    envfile.write_env_file(path, {"NATS_URL": "nats://x:1"}, pid=111)
    envfile.remove_env_file(path, pid=222)
    assert path.exists()
    envfile.remove_env_file(path, pid=111)
    assert not path.exists()
    envfile.remove_env_file(path, pid=111)  # already gone: fine


def test_a_live_writer_is_reported_and_a_dead_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "env"
    assert envfile.live_writer(path) is None
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        envfile.write_env_file(path, {}, pid=child.pid)
        assert envfile.live_writer(path) == child.pid
    finally:
        child.communicate(b"")
    assert envfile.live_writer(path) is None
    envfile.write_env_file(path, {}, pid=os.getpid())
    assert envfile.live_writer(path) is None  # our own pid is never "another ponix dev"


def test_data_dir_comes_from_the_environment_or_defaults_to_dot_ponix() -> None:
    assert envfile.data_dir({}) == Path(".ponix")
    assert envfile.data_dir({"PONIX_DATA_DIR": "/srv/ponix"}) == Path("/srv/ponix")
