"""The fault figures as a table: printed at the end of a fault run (``conftest.py``), and as
Markdown for the README's Guarantees section from the results file.

    uv run python -m tests.faults.report                     # the last line of each scenario
    uv run python -m tests.faults.report --markdown --size long --commit abc1234
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from tests.faults.figures import results_path

_COLUMNS: Final = (
    "scenario",
    "size",
    "envelopes",
    "fault",
    "lost",
    "dup",
    "mismatch",
    "valid in DLQ",
    "poison in DLQ",
    "max deliveries",
    "naks",
    "RSS MB start/max/end",
    "seconds",
    "settings changed",
)


def _number(value: Any) -> str:
    if value is None or value == -1:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _mapping(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_number(v)}" for k, v in values.items()) or "defaults"


def row(line: Mapping[str, Any]) -> list[str]:
    rss = [line.get("rss_start_mb"), line.get("rss_max_mb"), line.get("rss_end_mb")]
    poison = int(line.get("poison") or 0)
    return [
        str(line["scenario"]),
        str(line["size"]),
        _number(line.get("messages")),
        _mapping(line.get("faults") or {}) if line.get("faults") else "",
        _number(line.get("lost")),
        _number(line.get("duplicated")),
        _number(line.get("mismatched")),
        _number(line.get("dlq_valid")),
        f"{_number(line.get('dlq'))}/{poison:,}" if poison else _number(line.get("dlq")),
        _number(line.get("max_deliveries")),
        _number(line.get("naks")),
        "/".join(_number(v) for v in rss) if any(v is not None for v in rss) else "",
        _number(line.get("duration_s")),
        _mapping(line.get("settings") or {}),
    ]


def text_table(lines: Sequence[Mapping[str, Any]]) -> list[str]:
    """Aligned columns for a terminal."""
    cells = [list(_COLUMNS), *(row(line) for line in lines)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def markdown_table(lines: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    out.extend("| " + " | ".join(c.replace("|", "/") for c in row(line)) + " |" for line in lines)
    return out


def latest(lines: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The last line of each (scenario, size), in the order scenarios first appeared."""
    last: dict[tuple[str, str], Mapping[str, Any]] = {}
    for line in lines:
        key = (str(line["scenario"]), str(line["size"]))
        last.pop(key, None)
        last[key] = line
    return sorted(last.values(), key=lambda line: (str(line["scenario"]), str(line["size"])))


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(text) for text in lines if text.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=results_path())
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--size", choices=("short", "long"))
    parser.add_argument("--commit", help="only lines of this commit (as recorded)")
    args = parser.parse_args(argv)
    lines = [
        line
        for line in read(args.path)
        if (args.size is None or line["size"] == args.size)
        and (args.commit is None or line.get("commit") == args.commit)
    ]
    render = markdown_table if args.markdown else text_table
    print("\n".join(render(latest(lines))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
