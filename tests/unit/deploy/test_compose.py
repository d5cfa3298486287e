"""The compose files: valid against the Compose Specification, wired to real settings, images,
Dockerfile targets, healthchecks and ports.

compose-spec.json is the Compose Specification's JSON schema (Apache-2.0, compose-spec.LICENSE),
as vendored in check-jsonschema 0.39.0 (sha256 d549057e...). Where the Compose v2 plugin is
installed, the real loader (`docker compose config`, no engine needed) renders each file too;
elsewhere the schema plus the cross-checks below stand in for it. tests/docker runs the stack.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ponix_devstack import CLICKHOUSE_IMAGE, CLICKHOUSE_IMAGE_ENV, NATS_IMAGE, NATS_IMAGE_ENV

HERE = Path(__file__).parent
REPO = HERE.parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILES = ("compose.deps.yaml", "compose.yaml", "compose.cluster.yaml")
SERVICE_FILES = ("compose.yaml", "compose.cluster.yaml")
SETTING_PREFIXES = ("NATS_", "CLICKHOUSE_", "PONIX_", "LOG_", "HTTP_", "INGESTER_", "PRODUCER_")
LONG_RUNNING_RESTART = {"always", "unless-stopped", "on-failure"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((HERE / "compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator: jsonschema.protocols.Validator, document: object) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def _ours(project: Any) -> list[Any]:
    """The services built from docker/Dockerfile (the Ponix ones); never none."""
    ours = [s for s in project.services.values() if s.build is not None]
    assert ours, f"{project.path.name} builds no Ponix service"
    return ours


def _healthy_deps(service: Any) -> dict[str, str]:
    deps = service.spec.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def _published(service: Any, interpolate: Callable[[str], str]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port, ranges expanded."""
    out: list[tuple[str, int, int]] = []
    for entry in service.spec.get("ports", ()):
        text = interpolate(str(entry))
        parts = text.split(":")
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        host, container = parts[-2], int(parts[-1].split("/")[0])
        low, _, high = host.partition("-")
        out.extend((host_ip, port, container) for port in range(int(low), int(high or low) + 1))
    return out


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(
    name: str, validator: jsonschema.protocols.Validator
) -> None:
    document = yaml.safe_load((DOCKER / name).read_text(encoding="utf-8"))
    assert _errors(validator, document) == []


def test_schema_rejects_a_misspelled_service_key(validator: jsonschema.protocols.Validator) -> None:
    broken = {"services": {"nats": {"image": NATS_IMAGE, "helthcheck": {"test": ["NONE"]}}}}
    assert any("helthcheck" in e for e in _errors(validator, broken))


def test_compose_yaml_includes_the_deps_and_adds_the_services(compose_projects: Any) -> None:
    full = compose_projects["compose.yaml"]
    assert full.included == ((DOCKER / "compose.deps.yaml").resolve(),)
    assert set(full.services) == {"nats", "clickhouse", "producer", "ingester"}
    assert full.services["nats"].source.name == "compose.deps.yaml"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_server_images_are_variables_defaulting_to_the_devstack_tags(
    name: str, compose_projects: Any
) -> None:
    """NATS_IMAGE / CLICKHOUSE_IMAGE pick the servers' images in compose as in testcontainers."""
    raw = {str(s.spec["image"]) for s in compose_projects[name].services.values()}
    servers = {image for image in raw if not image.startswith("ponix-")}
    assert servers, name
    assert servers <= {
        f"${{{NATS_IMAGE_ENV}:-{NATS_IMAGE}}}",
        f"${{{CLICKHOUSE_IMAGE_ENV}:-{CLICKHOUSE_IMAGE}}}",
    }


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_builds_take_the_base_image_and_network_from_variables(
    name: str, compose_projects: Any, dockerfile: Any
) -> None:
    for service in _ours(compose_projects[name]):
        build = service.build
        assert build["args"]["PYTHON_IMAGE"] == (
            f"${{PYTHON_IMAGE:-{dockerfile.global_args['PYTHON_IMAGE']}}}"
        )
        assert build["network"] == "${BUILD_NETWORK:-default}"


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_built_services_name_an_existing_dockerfile_target(
    name: str, compose_projects: Any, dockerfile: Any
) -> None:
    for service in _ours(compose_projects[name]):
        build = service.build
        context = service.path(build.get("context", "."))
        assert context == REPO, f"{service.name}: the build context is the repository root"
        assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKER / "Dockerfile"
        assert build.get("target") in dockerfile.stages, service.name
        assert service.image_name == f"ponix-{build['target']}"


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_services_set_only_real_setting_names(
    name: str, compose_projects: Any, known_env_names: frozenset[str]
) -> None:
    for service in _ours(compose_projects[name]):
        unknown = set(service.environment) - known_env_names
        assert not unknown, f"{service.name} sets variables no Ponix setting reads: {unknown}"


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_service_environment_validates_against_the_settings(
    name: str,
    compose_projects: Any,
    settings_classes: list[type[Any]],
    interpolate: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    for variable in list(os.environ):
        if variable.startswith(SETTING_PREFIXES):
            monkeypatch.delenv(variable)
    for service in _ours(compose_projects[name]):
        env = {key: interpolate(value) for key, value in service.environment.items()}
        for cls in settings_classes:
            fields = {f: env[cls.env_name(f)] for f in cls.model_fields if cls.env_name(f) in env}
            if fields:
                cls(**fields)  # raises with the variable's reason when a value is wrong


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_services_reach_the_servers_by_compose_name(name: str, compose_projects: Any) -> None:
    project = compose_projects[name]
    for service in _ours(project):
        env = service.environment
        for url in env["NATS_URL"].split(","):
            match = re.fullmatch(r"nats://([\w-]+):4222", url)
            assert match, url
            host = match.group(1)
            assert host in project.services, url
            assert _healthy_deps(service).get(host) == "service_healthy", (service.name, host)
        if "CLICKHOUSE_URL" in env:
            match = re.fullmatch(r"clickhouse://([\w-]+):9000", env["CLICKHOUSE_URL"])
            assert match, env["CLICKHOUSE_URL"]
            assert match.group(1) in project.services


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_services_use_the_servers_credentials(name: str, compose_projects: Any) -> None:
    project = compose_projects[name]
    nats = [s for s in project.services.values() if s.image == NATS_IMAGE]
    clickhouse = [
        s
        for s in project.services.values()
        if s.image == CLICKHOUSE_IMAGE and "CLICKHOUSE_USER" in s.environment
    ]
    for service in _ours(project):
        for server in nats:
            for key in ("NATS_USER", "NATS_PASSWORD"):
                assert service.environment[key] == server.environment[key], (service.name, key)
        if "CLICKHOUSE_URL" in service.environment:
            for server in clickhouse:
                for key in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"):
                    assert service.environment[key] == server.environment[key]
                if "CLICKHOUSE_DB" in server.environment:  # the servers, not clickhouse-schema
                    database = server.environment["CLICKHOUSE_DB"]
                    assert service.environment["CLICKHOUSE_DATABASE"] == database


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_healthy_dependency_has_a_healthcheck(
    name: str, compose_projects: Any, dockerfile: Any
) -> None:
    project = compose_projects[name]
    for service in project.services.values():
        for dep, condition in _healthy_deps(service).items():
            assert dep in project.services, f"{service.name} depends on unknown {dep}"
            if condition != "service_healthy":
                continue
            target = project.services[dep]
            has_check = "healthcheck" in target.spec or (
                target.build is not None
                and dockerfile.effective(target.build["target"], "HEALTHCHECK") is not None
            )
            assert has_check, f"{service.name} waits for {dep} to be healthy; nothing checks it"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_long_running_services_restart_and_one_shots_do_not(
    name: str, compose_projects: Any
) -> None:
    project = compose_projects[name]
    one_shots = {
        dep
        for s in project.services.values()
        for dep, cond in _healthy_deps(s).items()
        if cond == "service_completed_successfully"
    }
    for service in project.services.values():
        restart = str(service.spec.get("restart", "no"))
        if service.name in one_shots:
            assert restart == "no", service.name
        else:
            assert restart in LONG_RUNNING_RESTART, service.name


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_published_host_ports_are_loopback_and_unique(
    name: str, compose_projects: Any, interpolate: Callable[[str], str]
) -> None:
    seen: dict[tuple[str, int], str] = {}
    for service in compose_projects[name].services.values():
        for host_ip, port, _ in _published(service, interpolate):
            assert host_ip == "127.0.0.1", f"{service.name} publishes {port} on {host_ip}"
            assert (host_ip, port) not in seen, f"{service.name} and {seen[(host_ip, port)]}"
            seen[(host_ip, port)] = service.name


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_each_ponix_service_publishes_its_metrics_port(
    name: str, compose_projects: Any, interpolate: Callable[[str], str]
) -> None:
    for service in _ours(compose_projects[name]):
        published = _published(service, interpolate)
        container_ports = {c for _, _, c in published}
        assert int(service.environment["HTTP_PORT"]) in container_ports, service.name
        assert service.environment["LOG_FORMAT"] == "json"
        replicas = int(service.spec.get("deploy", {}).get("replicas", 1))
        assert len(published) == replicas, f"{service.name}: one host port per replica"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_mounted_files_exist_and_named_volumes_are_declared(
    name: str, compose_projects: Any
) -> None:
    project = compose_projects[name]
    for service in project.services.values():
        for volume in service.spec.get("volumes", ()):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert service.path(source).is_file(), f"{service.name} mounts missing {source}"
            else:
                assert source in project.volumes, f"{service.name}: volume {source} undeclared"


def test_servers_keep_their_data_in_named_volumes(compose_projects: Any) -> None:
    for project in compose_projects.values():
        for service in project.services.values():
            image = service.image
            if image == NATS_IMAGE:
                assert any(str(v).endswith(":/data") for v in service.spec["volumes"])
            one_shot = str(service.spec.get("restart", "no")) == "no"
            if image == CLICKHOUSE_IMAGE and not one_shot:
                assert any(str(v).endswith(":/var/lib/clickhouse") for v in service.spec["volumes"])


def test_clickhouse_gets_more_open_files_unless_the_host_caps_them(
    compose_projects: Any, interpolate: Callable[[str], str]
) -> None:
    for project in compose_projects.values():
        for service in project.services.values():
            if service.image == CLICKHOUSE_IMAGE and "CLICKHOUSE_DB" in service.environment:
                nofile = service.spec["ulimits"]["nofile"]
                for limit in ("soft", "hard"):
                    assert nofile[limit] == "${CLICKHOUSE_NOFILE:-262144}", service.name
                    assert int(interpolate(nofile[limit])) >= 262144


def test_cluster_runs_replicated_streams_and_scaled_ingesters(compose_projects: Any) -> None:
    cluster = compose_projects["compose.cluster.yaml"]
    nats_nodes = [s for s in cluster.services.values() if s.image == NATS_IMAGE]
    assert len(nats_nodes) == 3
    ingester = cluster.services["ingester"]
    assert int(ingester.spec["deploy"]["replicas"]) >= 2
    assert "container_name" not in ingester.spec
    assert "hostname" not in ingester.spec
    for service in _ours(cluster):
        env = service.environment
        assert int(env["NATS_REPLICAS"]) == len(nats_nodes)
        assert sorted(env["NATS_URL"].split(",")) == sorted(
            f"nats://{node.name}:4222" for node in nats_nodes
        )
    assert ingester.environment["INGESTER_MIGRATE"] == "false"
    deps = _healthy_deps(ingester)
    assert deps["clickhouse-schema"] == "service_completed_successfully"


def _compose_config(name: str, env: dict[str, str]) -> dict[str, Any]:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    base = {k: v for k, v in os.environ.items() if k not in _IMAGE_VARIABLES}  # a clean slate
    done = subprocess.run(
        ["docker", "compose", "-f", str(DOCKER / name), "config", "--format", "json"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 and not _has_compose_plugin():
        pytest.skip("no Compose v2 plugin")
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = json.loads(done.stdout)
    return rendered


def _has_compose_plugin() -> bool:
    """Whether ``docker compose`` is Compose v2: without the plugin the client answers with an
    error that differs between versions ("is not a docker command", "unknown shorthand flag")."""
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    return probe.returncode == 0


def _rendered(rendered: dict[str, Any]) -> set[tuple[str, str]]:
    """(what, value) pairs: server images, build base images and networks, nofile limits."""
    found: set[tuple[str, str]] = set()
    for service in rendered["services"].values():
        build = service.get("build")
        if build is not None:
            found.add(("python", build["args"]["PYTHON_IMAGE"]))
            found.add(("network", build["network"]))
        else:
            found.add(("image", service["image"]))
        for limit in service.get("ulimits", {}).get("nofile", {}).values():
            found.add(("nofile", str(limit)))
    return found


_IMAGE_VARIABLES = {
    NATS_IMAGE_ENV: "registry.example/nats:2",
    CLICKHOUSE_IMAGE_ENV: "registry.example/clickhouse:25",
    "PYTHON_IMAGE": "registry.example/python:3.11-slim",
    "BUILD_NETWORK": "host",
    "CLICKHOUSE_NOFILE": "20000",
}


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_compose_renders_the_official_images_by_default(name: str) -> None:
    assert _rendered(_compose_config(name, {})) == {
        ("image", NATS_IMAGE),
        ("image", CLICKHOUSE_IMAGE),
        ("python", "python:3.11-slim"),
        ("network", "default"),
        ("nofile", "262144"),
    }


@pytest.mark.parametrize("name", SERVICE_FILES)
def test_compose_renders_the_images_and_limits_the_variables_name(name: str) -> None:
    assert _rendered(_compose_config(name, _IMAGE_VARIABLES)) == {
        ("image", "registry.example/nats:2"),
        ("image", "registry.example/clickhouse:25"),
        ("python", "registry.example/python:3.11-slim"),
        ("network", "host"),
        ("nofile", "20000"),
    }
