"""``python -m ponix_bench.profile``: the shares the README's "Where the time goes" quotes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponix_bench.profile import main, read_profiles

PROC = 'process 1:"python -m ponix_ingester"'


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_function_counts_once_per_sample_and_self_is_the_top_frame(tmp_path: Path) -> None:
    _write(
        tmp_path / "r1-ponix.txt",
        [
            f"{PROC};run (loop.py:10);build (rows.py:5);walk (rows.py:9);walk (rows.py:12) 3",
            f"{PROC};run (loop.py:10);parse (parser.py:7) 1",
        ],
    )
    profile = read_profiles([tmp_path / "r1-ponix.txt"])

    assert profile.samples == 4
    inclusive = {name: share for share, name in profile.top(profile.inclusive, 10)}
    assert inclusive == {
        "run (loop.py)": 100.0,
        "build (rows.py)": 75.0,
        "walk (rows.py)": 75.0,
        "parse (parser.py)": 25.0,
    }
    assert profile.top(profile.own, 1) == [(75.0, "walk (rows.py)")]


def test_the_command_sums_one_contenders_runs_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "r1-ponix.txt", [f"{PROC};build (rows.py:5) 2"])
    _write(tmp_path / "r2-ponix.txt", [f"{PROC};build (rows.py:5) 2"])
    _write(tmp_path / "r1-raw.txt", [f"{PROC};parse (parser.py:7) 5"])

    main([str(tmp_path), "--contender", "ponix", "--top", "1"])

    out = capsys.readouterr().out
    assert out.startswith("ponix: 4 samples in 2 profile(s)")
    assert "100.0%  build (rows.py)" in out
    assert "parser.py" not in out


def test_the_command_says_when_a_contender_has_no_profiles(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--contender", "raw"])
    assert exc.value.code == 2
