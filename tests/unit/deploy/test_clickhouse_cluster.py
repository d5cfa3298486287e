"""The ClickHouse cluster of docker/compose.cluster.yaml: its config snippets agree with each other
and with the compose file, and clickhouse/cluster-schema.sql is the cluster migration's DDL.

chdb (modern ClickHouse, in process) parses and formats the SQL and knows the setting names; no
replicated table is created, since that needs Keeper and a running cluster.
"""

from __future__ import annotations

import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
import yoyo

from ponix_devstack import CLICKHOUSE_IMAGE

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
SNIPPETS = DOCKER / "clickhouse"
SCHEMA = SNIPPETS / "cluster-schema.sql"
CONFIG_D = "/etc/clickhouse-server/config.d/"
USERS_D = "/etc/clickhouse-server/users.d/"
SERVER_SNIPPETS = {
    "macros.xml": CONFIG_D,
    "remote-servers.xml": CONFIG_D,
    "use-keeper.xml": CONFIG_D,
    "profiles.xml": USERS_D,
}


@pytest.fixture(scope="module")
def chdb() -> ModuleType:
    return pytest.importorskip("chdb")


def _format(chdb: ModuleType, sql: str) -> str:
    """ClickHouse's own single-line rendering of ``sql``; a syntax error raises."""
    literal = "'" + sql.replace("\\", "\\\\").replace("'", "\\'") + "'"
    result = chdb.query(f"SELECT formatQuerySingleLine({literal})", "TSVRaw")
    return str(result.data()).strip()


def _xml(name: str) -> ET.Element:
    root = ET.parse(SNIPPETS / name).getroot()
    assert root.tag == "clickhouse", name
    return root


def _cluster(compose_projects: dict[str, Any]) -> Any:
    return compose_projects["compose.cluster.yaml"]


def _replicas(compose_projects: dict[str, Any]) -> list[Any]:
    return [
        s
        for s in _cluster(compose_projects).services.values()
        if s.image == CLICKHOUSE_IMAGE and "CLICKHOUSE_REPLICA" in s.environment
    ]


def _keeper(compose_projects: dict[str, Any]) -> Any:
    return _cluster(compose_projects).services["clickhouse-keeper"]


def _statements(sql: str) -> list[str]:
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def _cluster_migrations() -> list[ModuleType]:
    modules = []
    for path in sorted((REPO / "migrations" / "cluster").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"cluster_{path.stem}", path)
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        with mock.patch.object(yoyo, "step"):  # yoyo collects steps only while it reads
            spec.loader.exec_module(module)
        modules.append(module)
    assert modules, "migrations/cluster holds no migration"
    return modules


@pytest.mark.parametrize("name", sorted([*SERVER_SNIPPETS, "keeper.xml"]))
def test_snippet_is_clickhouse_xml(name: str) -> None:
    assert len(_xml(name)) > 0


def test_replicas_mount_every_snippet_and_name_themselves(
    compose_projects: dict[str, Any],
) -> None:
    replicas = _replicas(compose_projects)
    assert len(replicas) == 2
    for replica in replicas:
        mounts = {str(v).split(":")[0]: str(v).split(":")[1] for v in replica.spec["volumes"]}
        for name, directory in SERVER_SNIPPETS.items():
            target = mounts.get(f"./clickhouse/{name}")
            assert target, (replica.name, name)
            assert target.startswith(directory), (replica.name, name)
        assert replica.environment["CLICKHOUSE_REPLICA"] == replica.name
        assert replica.spec["hostname"] == replica.name
        deps = replica.spec["depends_on"]
        assert deps["clickhouse-keeper"]["condition"] == "service_healthy"


def test_macros_name_shard_replica_and_a_defined_cluster() -> None:
    macros = _xml("macros.xml").find("macros")
    assert macros is not None
    assert macros.findtext("shard")
    assert macros.find("replica").get("from_env") == "CLICKHOUSE_REPLICA"  # type: ignore[union-attr]
    cluster = macros.findtext("cluster")
    servers = _xml("remote-servers.xml").find("remote_servers")
    assert servers is not None
    assert servers.find(str(cluster)) is not None
    host = _xml("macros.xml").find("interserver_http_host")
    assert host is not None
    assert host.get("from_env") == "CLICKHOUSE_REPLICA"


def test_remote_servers_list_the_replicas_with_their_credentials(
    compose_projects: dict[str, Any],
) -> None:
    servers = _xml("remote-servers.xml").find("remote_servers")
    assert servers is not None
    (cluster,) = list(servers)
    (shard,) = cluster.findall("shard")
    assert shard.findtext("internal_replication") == "true"
    replicas = _replicas(compose_projects)
    hosts = [r.findtext("host") for r in shard.findall("replica")]
    assert sorted(hosts) == sorted(r.name for r in replicas)
    for entry in shard.findall("replica"):
        assert entry.findtext("port") == "9000"
        for field in ("user", "password"):
            variable = entry.find(field).get("from_env")  # type: ignore[union-attr]
            assert all(variable in r.environment for r in replicas), variable


def test_replicas_and_keeper_agree_on_where_keeper_is(compose_projects: dict[str, Any]) -> None:
    node = _xml("use-keeper.xml").find("zookeeper/node")
    assert node is not None
    keeper = _xml("keeper.xml").find("keeper_server")
    assert keeper is not None
    service = _keeper(compose_projects)
    assert node.findtext("host") == service.name == service.spec["hostname"]
    assert node.findtext("port") == keeper.findtext("tcp_port")
    (raft,) = keeper.findall("raft_configuration/server")
    assert raft.findtext("hostname") == service.name
    assert raft.findtext("id") == keeper.findtext("server_id")


def test_keeper_runs_from_the_server_image_with_its_config(
    compose_projects: dict[str, Any],
) -> None:
    service = _keeper(compose_projects)
    assert service.image == CLICKHOUSE_IMAGE
    mounted = {str(v).split(":")[0]: str(v).split(":")[1] for v in service.spec["volumes"]}
    config = mounted["./clickhouse/keeper.xml"]
    assert service.spec["entrypoint"] == [
        "/usr/bin/clickhouse",
        "keeper",
        f"--config-file={config}",
    ]
    assert service.spec["user"] == "101:101"
    keeper = _xml("keeper.xml").find("keeper_server")
    assert keeper is not None
    for path in ("log_storage_path", "snapshot_storage_path"):
        assert str(keeper.findtext(path)).startswith(mounted["clickhouse-keeper-data"] + "/")
    port = keeper.findtext("http_control/port")
    endpoint = keeper.findtext("http_control/readiness/endpoint")
    assert service.spec["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}{endpoint}"


def test_profile_settings_exist_in_clickhouse(chdb: ModuleType) -> None:
    default = _xml("profiles.xml").find("profiles/default")
    assert default is not None
    assert len(default) > 0
    for setting in default:
        found = chdb.query(
            f"SELECT count() FROM system.settings WHERE name = '{setting.tag}'", "TSVRaw"
        )
        assert str(found.data()).strip() == "1", f"ClickHouse has no setting {setting.tag}"
    assert default.findtext("distributed_foreground_insert") == "1"


def test_cluster_schema_is_the_cluster_migration_on_the_compose_server(chdb: ModuleType) -> None:
    version = tuple(int(p) for p in CLICKHOUSE_IMAGE.rsplit(":", 1)[1].split("."))
    expected = [
        _format(chdb, sql)
        for module in _cluster_migrations()
        for sql in module.statements("ponix", "processed_envelopes", version)
    ]
    written = [_format(chdb, sql) for sql in _statements(SCHEMA.read_text(encoding="utf-8"))]
    assert written == expected


def test_cluster_schema_targets_the_cluster_and_the_service_table(chdb: ModuleType) -> None:
    for sql in _statements(SCHEMA.read_text(encoding="utf-8")):
        formatted = _format(chdb, sql)
        assert "IF NOT EXISTS" in formatted
        assert "ON CLUSTER `{cluster}`" in formatted
    text = SCHEMA.read_text(encoding="utf-8")
    assert re.search(r"ReplicatedReplacingMergeTree\('/clickhouse/tables/\{shard\}/", text)
    assert "'{replica}'" in text
    assert re.search(r"CREATE TABLE IF NOT EXISTS ponix\.processed_envelopes ON CLUSTER", text)


def test_schema_service_applies_the_file_before_the_ingesters(
    compose_projects: dict[str, Any],
) -> None:
    cluster = _cluster(compose_projects)
    schema = cluster.services["clickhouse-schema"]
    mounted = {str(v).split(":")[0]: str(v).split(":")[1] for v in schema.spec["volumes"]}
    target = mounted["./clickhouse/cluster-schema.sql"]
    (command,) = schema.spec["command"]
    assert f"< {target}" in command
    assert "--multiquery" in command
    replicas = _replicas(compose_projects)
    assert {
        name
        for name, dep in schema.spec["depends_on"].items()
        if dep["condition"] == "service_healthy"
    } == {r.name for r in replicas}
    ingester = cluster.services["ingester"]
    assert ingester.environment["INGESTER_MIGRATE"] == "false"
    host = re.fullmatch(r"clickhouse://([\w-]+):9000", ingester.environment["CLICKHOUSE_URL"])
    assert host
    assert host.group(1) in {r.name for r in replicas}
