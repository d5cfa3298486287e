"""The ingester's libs sit below it: ponix_ingest and ponix_workers import no service and no
devstack, and the inline ingester (INGESTER_WORKERS=0, the default) loads no worker code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
SERVICES = ("ponix_ingester", "ponix_producer", "ponix_all_in_one", "ponix_cli", "ponix_bench")


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("lib", ["ingest", "workers"])
def test_the_lib_imports_no_service_and_no_devstack(lib: str) -> None:
    sources = sorted((REPO / "libs" / lib / "src").rglob("*.py"))
    assert sources
    for source in sources:
        wrong = imported(source) & {*SERVICES, "ponix_devstack"}
        assert not wrong, f"{source.relative_to(REPO)} imports {sorted(wrong)}"


def test_the_inline_ingester_loads_no_worker_code() -> None:
    probe = (
        "import sys, ponix_ingester, ponix_ingester.__main__, ponix_ingester.ingester\n"
        "print(sorted(m for m in sys.modules if m.startswith('ponix_workers')))\n"
        "print('prometheus_client.multiprocess' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "False"], done.stdout
