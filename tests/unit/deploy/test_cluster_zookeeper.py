"""docker/compose.cluster.zookeeper.yaml: the cluster file's override for ClickHouse 18.16, whose
replicas coordinate through ZooKeeper. Its snippets replace the modern ones mount for mount,
keep their shape under 18.16's <yandex> root, and its schema has migration 0001's 18.16 columns.
tests/docker/test_cluster.py runs it for real.
"""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET
from typing import Any
from unittest import mock

import jsonschema
import pytest
import yaml
import yoyo

from tests.unit.deploy.conftest import DOCKER_DIR, REPO

OVERRIDE = DOCKER_DIR / "compose.cluster.zookeeper.yaml"
OLD = DOCKER_DIR / "clickhouse-18.16"
# The 18.16 snippet and the modern one it stands in for.
COUNTERPARTS = {
    "macros.xml": "macros.xml",
    "remote-servers.xml": "remote-servers.xml",
    "use-zookeeper.xml": "use-keeper.xml",
    "profiles.xml": "profiles.xml",
}


def _override() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(OVERRIDE.read_text(encoding="utf-8"))
    return document


def _mounts(spec: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's bind mounts."""
    pairs = (str(volume).split(":")[:2] for volume in spec.get("volumes", ()))
    return {target: source for source, target in pairs}


def test_override_matches_the_compose_specification() -> None:
    schema = json.loads((REPO / "tests/unit/deploy/compose-spec.json").read_text("utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(_override())] == []


def test_override_only_replaces_mounts_of_existing_services(
    compose_projects: dict[str, Any],
) -> None:
    cluster = compose_projects["compose.cluster.yaml"]
    for name, spec in _override()["services"].items():
        assert name in cluster.services, f"{name} is not a service of compose.cluster.yaml"
        if name == "clickhouse-keeper":
            continue
        base = _mounts(cluster.services[name].spec)
        for target, source in _mounts(spec).items():
            assert target in base, f"{name}: {source} adds {target} instead of replacing a mount"
            assert (OVERRIDE.parent / source).is_file(), source


def test_coordinator_runs_zookeeper_with_the_mounted_config() -> None:
    keeper = _override()["services"]["clickhouse-keeper"]
    assert keeper["image"] == "${ZOOKEEPER_IMAGE:-zookeeper:3.8}"
    config = _mounts(keeper)["/conf/zoo.cfg"]
    assert keeper["entrypoint"][-1] == "/conf/zoo.cfg"
    assert keeper["healthcheck"]["test"][-1] == "/conf/zoo.cfg"
    settings = dict(
        line.split("=", 1)
        for line in (OVERRIDE.parent / config).read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    node = ET.parse(OLD / "use-zookeeper.xml").getroot().find("zookeeper/node")
    assert node is not None
    assert node.findtext("host") == "clickhouse-keeper"
    assert node.findtext("port") == settings["clientPort"]


@pytest.mark.parametrize(("old", "modern"), sorted(COUNTERPARTS.items()))
def test_snippets_have_18_16_roots_and_the_modern_shape(old: str, modern: str) -> None:
    mine = ET.parse(OLD / old).getroot()
    theirs = ET.parse(DOCKER_DIR / "clickhouse" / modern).getroot()
    assert mine.tag == "yandex"

    def paths(element: ET.Element, prefix: str = "") -> set[str]:
        found = set()
        for child in element:
            path = f"{prefix}/{child.tag}"
            found |= {path} | paths(child, path)
        return found

    if old == "profiles.xml":  # the one setting is renamed in 18.16
        assert mine.findtext("profiles/default/insert_distributed_sync") == "1"
        assert theirs.findtext("profiles/default/distributed_foreground_insert") == "1"
    else:
        assert paths(mine) == paths(theirs)


def test_schema_has_the_columns_migration_0001_creates_on_18_16() -> None:
    path = REPO / "migrations" / "0001_create_processed_envelopes.py"
    spec = importlib.util.spec_from_file_location("m0001", path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    with mock.patch.object(yoyo, "step"):
        spec.loader.exec_module(module)
    migration = next(s for s in module.statements("ponix", "t", (18, 16)) if "TABLE" in s)
    expected = re.findall(r"`(\w+)` ([A-Za-z]+\([^)]*\)|[A-Za-z]+)", migration.split("ENGINE")[0])
    sql = (OLD / "cluster-schema.sql").read_text(encoding="utf-8")
    local = sql[sql.index("processed_envelopes_local ON CLUSTER") :]
    written = re.findall(r"`(\w+)` ([A-Za-z]+\([^)]*\)|[A-Za-z]+)", local.split("ENGINE")[0])
    assert written == expected
    assert "ReplicatedReplacingMergeTree" in local
    assert "ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`)" in local
