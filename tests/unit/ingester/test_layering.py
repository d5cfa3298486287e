"""The ingester's libs sit below it: ponix_ingest imports no service and no devstack."""

from __future__ import annotations

import ast
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


@pytest.mark.parametrize("lib", ["ingest", "clickhouse", "nats"])
def test_the_lib_imports_no_service_and_no_devstack(lib: str) -> None:
    sources = sorted((REPO / "libs" / lib / "src").rglob("*.py"))
    assert sources
    for source in sources:
        wrong = imported(source) & {*SERVICES, "ponix_devstack"}
        assert not wrong, f"{source.relative_to(REPO)} imports {sorted(wrong)}"
