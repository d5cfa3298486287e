"""One JSON line of figures per scenario run, so that runs can be compared over time.

Lines are appended to ``.ponix/faults-results.jsonl`` at the repository root (``.ponix/`` is
git-ignored; ``PONIX_FAULTS_RESULTS`` points elsewhere) and printed in pytest's terminal summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_ENV = "PONIX_FAULTS_RESULTS"

# Everything recorded in this session, for the terminal summary (see conftest.py).
RECORDED: list[dict[str, Any]] = []


def results_path() -> Path:
    configured = os.environ.get(RESULTS_ENV, "").strip()
    return Path(configured) if configured else ROOT / ".ponix" / "faults-results.jsonl"


@dataclass
class Figures:
    """The figures of one scenario run; ``faults`` says what was done (kills, outage length)."""

    scenario: str
    size: str  # "short" | "long"
    messages: int = 0
    poison: int = 0
    faults: dict[str, Any] = field(default_factory=dict)
    lost: int = -1
    duplicated: int = -1
    unexpected: int = -1
    mismatched: int = -1
    dlq: int = 0
    dlq_valid: int = -1
    dlq_missing: int = -1
    dlq_unexpected: int = -1
    redeliveries: int = -1
    max_deliveries: int = -1
    naks: int = -1
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    rss_max_mb: float | None = None
    duration_s: float = 0.0
    settings: dict[str, str] = field(default_factory=dict)
    """The settings the scenario changed from the shipped defaults."""
    notes: dict[str, Any] = field(default_factory=dict)

    def take(self, verdict: Any) -> None:
        """Copy an oracle ``Verdict``'s counts."""
        self.messages = verdict.published
        self.poison = verdict.poison_published
        self.lost = len(verdict.lost)
        self.duplicated = verdict.duplicated
        self.unexpected = len(verdict.unexpected)
        self.mismatched = len(verdict.mismatched)
        self.dlq = verdict.dead_lettered
        self.dlq_valid = len(verdict.valid_dead_lettered)
        self.dlq_missing = len(verdict.dlq_missing)
        self.dlq_unexpected = len(verdict.dlq_unexpected)

    def take_outcome(self, outcome: Any, started: float) -> None:
        """A drained run's (``harness.Outcome``) verdict counts, redeliveries, largest delivery
        count, naks and settings, and the seconds since ``started`` (``time.monotonic()``)."""
        self.take(outcome.verdict)
        self.redeliveries = outcome.redeliveries
        self.max_deliveries = outcome.max_deliveries
        self.naks = outcome.naks
        self.settings = dict(outcome.settings)
        self.duration_s = time.monotonic() - started


def record(figures: Figures) -> dict[str, Any]:
    """Append ``figures`` as one JSON line (with the time and commit) and keep it for the
    terminal summary; returns the line's object."""
    line: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "dirty": _dirty(),
        **asdict(figures),
    }
    line["duration_s"] = round(figures.duration_s, 2)
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=False) + "\n")
    RECORDED.append(line)
    print(json.dumps(line))
    return line


def _commit() -> str:
    out = _git("rev-parse", "--short", "HEAD")
    return "" if out is None else out.strip()


def _dirty() -> bool:
    """Whether the product code (libs/, services/) differs from the commit: figures of a dirty
    tree belong to no commit."""
    out = _git("status", "--porcelain", "--", "libs", "services")
    return out is None or bool(out.strip())


def _git(*args: str) -> str | None:
    """``git args`` in the repository: its stdout, or None when git cannot run."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return proc.stdout


def rss_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` and all its descendants in MB, from /proc (None when it is gone)."""
    total_kb = 0
    found = False
    for one in _tree(pid):
        try:
            status = Path(f"/proc/{one}/status").read_text(encoding="utf-8")
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
                found = True
                break
    return round(total_kb / 1024, 1) if found else None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    return _tree(pid)


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1]
        except OSError:
            continue
        if state.split()[0] != "Z":
            out.append(pid)
    return out


def _tree(pid: int) -> list[int]:
    out = [pid]
    index = 0
    while index < len(out):
        current = out[index]
        index += 1
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text(encoding="utf-8").split()
            except OSError:
                continue
            out.extend(int(child) for child in children)
    return out
