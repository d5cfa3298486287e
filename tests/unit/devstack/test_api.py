from pathlib import Path

import pytest

import ponix_devstack
from ponix_devstack import DevstackError, DockerUnavailableError, NatsContainer, docker_available


def test_public_api_is_a_sorted_tuple_of_importable_names() -> None:
    names = ponix_devstack.__all__

    assert isinstance(names, tuple)
    assert all(hasattr(ponix_devstack, name) for name in names)
    assert not [name for name in names if name.startswith("_")]


def test_every_error_has_its_own_stable_code() -> None:
    errors = [
        obj
        for obj in vars(ponix_devstack).values()
        if isinstance(obj, type) and issubclass(obj, DevstackError)
    ]
    codes = [error.code for error in errors]

    assert len(errors) >= 10
    assert len(set(codes)) == len(codes)
    assert all(code.startswith("devstack.") for code in codes)


def test_image_tags_are_pinned_to_a_minor_version() -> None:
    assert ponix_devstack.NATS_IMAGE == "nats:2.11-alpine"
    assert ponix_devstack.CLICKHOUSE_IMAGE == "clickhouse/clickhouse-server:25.8"


def test_containers_without_a_docker_engine_fail_with_a_typed_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")

    assert not docker_available()
    with pytest.raises(DockerUnavailableError) as excinfo:
        NatsContainer().start()
    assert excinfo.value.code == "devstack.docker_unavailable"
