"""The Tiltfile: evaluated by go.starlark.net (Tilt's own interpreter, via starlark-go) against
stubs of the Tilt builtins it uses, each with Tilt's documented signature, so a misspelt
argument or an unknown builtin fails; then every call is checked against the repository.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TILTFILE = REPO / "Tiltfile"
LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


@dataclass
class TiltCalls:
    """What a Tiltfile asked Tilt to do."""

    compose: list[list[str]] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    settings: list[dict[str, Any]] = field(default_factory=list)


def _paths(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _builtins(calls: TiltCalls) -> dict[str, Callable[..., Any]]:
    """Stubs with the signatures of tilt's internal/tiltfile/api/__init__.py."""

    def version_settings(check_updates: bool = True, constraint: str = "") -> None:
        calls.settings.append({"check_updates": check_updates, "constraint": constraint})

    def docker_compose(
        configPaths: str | list[str],  # noqa: N803 - Tilt's own parameter name
        env_file: str | None = None,
        project_name: str = "",
        profiles: str | list[str] | None = None,
        wait: bool = False,
    ) -> None:
        calls.compose.append(_paths(configPaths))

    def docker_build(
        ref: str,
        context: str,
        build_args: dict[str, str] | None = None,
        dockerfile: str = "Dockerfile",
        dockerfile_contents: str = "",
        live_update: list[dict[str, Any]] | None = None,
        match_in_env_vars: bool = False,
        ignore: str | list[str] | None = None,
        only: str | list[str] | None = None,
        entrypoint: str | list[str] | None = None,
        target: str = "",
        ssh: str | list[str] = "",
        network: str = "",
        secret: str | list[str] = "",
        extra_tag: str | list[str] = "",
        container_args: list[str] | None = None,
        cache_from: str | list[str] | None = None,
        pull: bool = False,
        platform: str = "",
        extra_hosts: str | list[str] | None = None,
    ) -> None:
        calls.builds.append(
            {
                "ref": ref,
                "context": context,
                "dockerfile": dockerfile,
                "target": target,
                "build_args": dict(build_args or {}),
                "only": _paths(only),
                "entrypoint": entrypoint,
                "live_update": list(live_update or []),
            }
        )

    def dc_resource(
        name: str,
        trigger_mode: int = 0,
        resource_deps: list[str] | None = None,
        links: Any = None,
        labels: str | list[str] | None = None,
        auto_init: bool = True,
        project_name: str = "",
        new_name: str = "",
        infer_links: bool = True,
    ) -> None:
        calls.resources.append(
            {
                "name": name,
                "resource_deps": list(resource_deps or []),
                "labels": _paths(labels),
                "links": links if isinstance(links, list) else _paths(links),
            }
        )

    def sync(local_path: str, remote_path: str) -> dict[str, Any]:
        return {"step": "sync", "local": local_path, "remote": remote_path}

    def run(
        cmd: str | list[str], trigger: str | list[str] | None = None, echo_off: bool = False
    ) -> dict[str, Any]:
        return {"step": "run", "cmd": cmd, "trigger": _paths(trigger)}

    def fall_back_on(files: str | list[str]) -> dict[str, Any]:
        return {"step": "fall_back_on", "files": _paths(files)}

    def restart_container() -> dict[str, Any]:
        return {"step": "restart_container"}

    def link(url: str, name: str | None = None) -> dict[str, Any]:
        return {"link": url, "name": name}

    return {
        f.__name__: f
        for f in (
            version_settings,
            docker_compose,
            docker_build,
            dc_resource,
            sync,
            run,
            fall_back_on,
            restart_container,
            link,
        )
    }


def evaluate(source: str, filename: str = "Tiltfile") -> TiltCalls:
    starlark_go = pytest.importorskip("starlark_go")
    # Tilt's dialect: set(), top-level if/for and reassignment, while and recursion.
    starlark_go.configure_starlark(allow_set=True, allow_global_reassign=True, allow_recursion=True)
    calls = TiltCalls()
    # starlark-go keeps no reference to the Python callables it is given: hold them here for
    # the whole evaluation, or a call lands on a freed object and the interpreter crashes.
    builtins = _builtins(calls)
    interpreter = starlark_go.Starlark(globals=builtins)
    interpreter.exec(source, filename=filename)
    del interpreter, builtins
    return calls


@pytest.fixture(scope="module")
def tilt() -> TiltCalls:
    return evaluate(TILTFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tilt_project(tilt: TiltCalls, compose_projects: dict[str, Any]) -> Any:
    (paths,) = tilt.compose
    (path,) = paths
    name = (REPO / path).resolve().name
    return compose_projects[name]


def test_harness_rejects_a_misspelt_argument() -> None:
    starlark_go = pytest.importorskip("starlark_go")
    with pytest.raises(starlark_go.EvalError, match="targett"):
        evaluate('docker_build("x", ".", targett = "producer")')


def test_harness_rejects_a_builtin_it_does_not_know() -> None:
    starlark_go = pytest.importorskip("starlark_go")
    with pytest.raises(starlark_go.ResolveError, match="k8s_yaml"):
        evaluate('k8s_yaml("deploy.yaml")')


def test_tiltfile_pins_a_tilt_version(tilt: TiltCalls) -> None:
    (settings,) = tilt.settings
    assert re.fullmatch(r">=\d+\.\d+\.\d+", settings["constraint"])


def test_compose_project_has_the_deps_and_the_services(tilt: TiltCalls, tilt_project: Any) -> None:
    for path in tilt.compose[0]:
        assert (REPO / path).is_file(), path
    assert {"nats", "clickhouse", "producer", "ingester"} <= set(tilt_project.services)
    assert (REPO / "docker" / "compose.deps.yaml").resolve() in tilt_project.included


def test_every_built_compose_service_gets_a_tilt_build(tilt: TiltCalls, tilt_project: Any) -> None:
    built = {s.image_name: s for s in tilt_project.services.values() if s.build is not None}
    assert {b["ref"] for b in tilt.builds} == set(built)
    for build in tilt.builds:
        service = built[build["ref"]]
        assert (REPO / build["context"]).resolve() == service.path(service.build["context"])
        assert build["dockerfile"] == service.build["dockerfile"]
        assert build["target"] == service.build["target"]
        assert build["entrypoint"] is None  # not supported for Docker Compose resources


def test_build_args_are_declared_by_the_target(tilt: TiltCalls, dockerfile: Any) -> None:
    for build in tilt.builds:
        declared = {
            arg.split("=", 1)[0]
            for stage in dockerfile.chain(build["target"])
            for instruction in stage.of("ARG")
            for arg in instruction.args
        }
        assert set(build["build_args"]) <= declared, build["ref"]
        assert build["build_args"].get("APP_OWNER") == "ponix"


def test_build_context_holds_everything_the_dockerfile_copies(
    tilt: TiltCalls, dockerfile: Any
) -> None:
    for build in tilt.builds:
        only = build["only"]
        assert only
        for path in only:
            assert (REPO / build["context"] / path).exists(), path
        stages = list(dockerfile.chain(build["target"]))
        stages += [dockerfile.stages[f"{build['target']}-build"], dockerfile.stages["workspace"]]
        for stage in stages:
            for copy in stage.of("COPY"):
                if copy.flag("from"):
                    continue
                for source in copy.args[:-1]:
                    top = source.strip("/").split("/")[0]
                    assert any(top == o.strip("/").split("/")[0] for o in only), source


def test_live_update_steps_are_in_tilts_order(tilt: TiltCalls) -> None:
    order = ["fall_back_on", "sync", "run", "restart_container"]
    for build in tilt.builds:
        steps = [step["step"] for step in build["live_update"]]
        assert steps == sorted(steps, key=order.index), build["ref"]
        assert steps.count("restart_container") == 1
        assert steps[-1] == "restart_container"
        assert "sync" in steps


def test_synced_paths_exist_and_land_where_the_image_keeps_them(
    tilt: TiltCalls, dockerfile: Any
) -> None:
    for build in tilt.builds:
        workdir = dockerfile.stages["workspace"].of("WORKDIR")[-1].args[0]
        copied = {
            f"{workdir}/{c.args[-1].strip('/')}"
            if not c.args[-1].startswith("/")
            else c.args[-1].rstrip("/")
            for stage in [
                dockerfile.stages[f"{build['target']}-build"],
                dockerfile.stages[build["target"]],
            ]
            for c in stage.of("COPY")
            if not c.flag("from")
        }
        for step in build["live_update"]:
            if step["step"] != "sync":
                continue
            assert (REPO / build["context"] / step["local"]).is_dir(), step["local"]
            assert step["remote"] in copied, f"{build['ref']}: nothing is at {step['remote']}"
            assert any(
                step["local"] == o or step["local"].startswith(o + "/") for o in build["only"]
            )


def test_dependency_changes_fall_back_to_a_full_build(
    tilt: TiltCalls, workspace_members: dict[str, Any]
) -> None:
    expected = {"pyproject.toml", "uv.lock"} | {
        f"{m.path}/pyproject.toml" for m in workspace_members.values()
    }
    for build in tilt.builds:
        (fall_back,) = [s for s in build["live_update"] if s["step"] == "fall_back_on"]
        assert set(fall_back["files"]) == expected
        for path in fall_back["files"]:
            assert (REPO / path).is_file(), path


def test_resources_name_compose_services_with_valid_labels(
    tilt: TiltCalls, tilt_project: Any
) -> None:
    named = {r["name"] for r in tilt.resources}
    assert named == set(tilt_project.services)
    for resource in tilt.resources:
        assert resource["labels"], resource["name"]
        for label in resource["labels"]:
            assert LABEL.match(label), label
        for dep in resource["resource_deps"]:
            assert dep in tilt_project.services, dep


def test_resource_links_point_at_published_ports(
    tilt: TiltCalls, tilt_project: Any, interpolate: Callable[[str], str]
) -> None:
    for resource in tilt.resources:
        service = tilt_project.services[resource["name"]]
        published = {interpolate(str(p)).split(":")[-2] for p in service.spec.get("ports", ())}
        for link in resource["links"]:
            match = re.fullmatch(r"http://localhost:(\d+)/.*", link["link"])
            assert match, link
            assert match.group(1) in published, (resource["name"], link["link"])
