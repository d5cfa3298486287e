"""Shell completion is on, and a short flag means the same thing on every verb."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer

from ponix_cli.app import app
from ponix_cli.options import parse_since

# Different long names for one meaning; any other short flag has exactly one long name.
SYNONYMS = ({"--count", "--limit"},)


def _commands(command: Any, path: str = "ponix") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, f"{path} {name}")


def _short_flags() -> dict[str, set[str]]:
    """Each short flag -> the long names it stands for, over every verb."""
    longs: dict[str, set[str]] = defaultdict(set)
    for _, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            if param.param_type_name != "option":
                continue
            for short in (o for o in param.opts if len(o) == 2):
                longs[short].update(o for o in param.opts if o.startswith("--"))
    return longs


def test_each_short_flag_has_one_meaning_across_verbs() -> None:
    clashes = {
        short: sorted(names)
        for short, names in _short_flags().items()
        if len(names) > 1 and not any(names <= same for same in SYNONYMS)
    }
    assert clashes == {}


def test_n_is_how_many_and_f_is_the_output_format() -> None:
    longs = _short_flags()
    assert longs["-n"] == {"--count", "--limit"}
    assert longs["-f"] == {"--format"}


def _complete(words: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "ponix_cli"],
        env={
            "_PONIX_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_bash_completion_offers_verbs_subcommands_and_formats() -> None:
    assert _complete("ponix qu") == ["query"]
    assert _complete("ponix stream ") == ["peek"]
    assert "JSONEachRow" in _complete("ponix query -f JSON")
    assert _complete("ponix query --format js") == ["jsonl"]


def test_the_root_offers_completion_install() -> None:
    names = {o for p in typer.main.get_command(app).params for o in getattr(p, "opts", [])}
    assert {"--install-completion", "--show-completion"} <= names


def test_since_takes_a_duration_back_from_now_or_a_time() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert parse_since("15m", now=now) == now - timedelta(minutes=15)
    assert parse_since("2h", now=now) == now - timedelta(hours=2)
    assert parse_since("1.5d", now=now) == now - timedelta(hours=36)
    assert parse_since("2026-12-01T10:00:00", now=now) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_since("2026-12-01T10:00:00+01:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_since("last tuesday")
