"""The checked-in generated code matches proto/ (scripts/gen_protos.py --check)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "gen_protos.py"


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ponix_gen_protos", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(gen: ModuleType) -> dict[str, str]:
    files: dict[str, str] = gen.render()
    return files


def test_generated_code_is_not_stale(gen: ModuleType, rendered: dict[str, str]) -> None:
    problems = gen.diff_trees(rendered, gen.read_tree(gen.GENERATED))
    assert not problems, (
        "libs/proto/src/ponix_proto/_generated is stale; run `make proto`:\n" + "\n".join(problems)
    )


def test_generation_is_deterministic(gen: ModuleType, rendered: dict[str, str]) -> None:
    assert gen.render() == rendered


def test_generation_covers_both_runtimes(rendered: dict[str, str]) -> None:
    assert "bp2/ponix/envelope/v1/__init__.py" in rendered
    assert "bp2/ponix/envelope/v1/__init__.pyi" in rendered  # the typed twin mypy reads
    assert "bp2/google/protobuf/__init__.py" in rendered
    assert "pb2/ponix/envelope/v1/envelope_pb2.py" in rendered
    assert "pb2/ponix/envelope/v1/envelope_pb2.pyi" in rendered


def test_check_reports_stale_missing_and_unexpected_files(
    gen: ModuleType, rendered: dict[str, str], tmp_path: Path
) -> None:
    copy = tmp_path / "_generated"
    shutil.copytree(gen.GENERATED, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "pb2" / "ponix" / "envelope" / "v1" / "envelope_pb2.py").write_text("# edited\n")
    (copy / "bp2" / "py.typed").unlink()
    (copy / "stray.py").write_text("")

    problems = gen.diff_trees(rendered, gen.read_tree(copy))

    assert [p.splitlines()[0] for p in problems] == [
        "missing: bp2/py.typed",
        "unexpected: stray.py",
        "differs: pb2/ponix/envelope/v1/envelope_pb2.py",
    ]


def test_check_mode_exit_codes(
    gen: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert gen.main(["--check"]) == 0

    monkeypatch.setattr(gen, "GENERATED", tmp_path / "nowhere")
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "STALE" in capsys.readouterr().err
