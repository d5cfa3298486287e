"""Coverage-guided fuzzing of the decoder with atheris, when it is installed (it is a dev
dependency; its wheels cover CPython on Linux x86-64).

The fuzzer runs ``PONIX_ATHERIS_RUNS`` inputs (default 50,000, about five seconds) from a seed
corpus of valid envelopes, with a fixed seed so that a red run is reproducible.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ponix_proto import new_envelope_id, pb

pytest.importorskip("atheris")

HARNESS = Path(__file__).with_name("atheris_decoder.py")


def seed_corpus(directory: Path) -> None:
    directory.mkdir()
    for index, with_id in enumerate((True, False)):
        env = pb.ProcessedEnvelope(end_device_id="device-1", organization_id="org-1")
        if with_id:
            env.id = new_envelope_id()
        env.occurred_at.seconds = 1_790_000_000
        env.occurred_at.nanos = 123_000_000
        env.processed_at.seconds = 1_790_000_001
        env.data.update({"temperature": 21.5, "ok": True, "tags": ["a", None], "n": {"x": 1.0}})
        (directory / f"seed-{index}").write_bytes(env.SerializeToString())


def test_atheris_finds_no_input_the_decoder_raises_on(tmp_path: Path, examples: Any) -> None:
    runs = examples.plan(int(os.environ.get("PONIX_ATHERIS_RUNS", "50000")))
    corpus = tmp_path / "corpus"
    seed_corpus(corpus)
    proc = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            f"-runs={runs}",
            "-seed=1",
            "-max_len=512",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    done = re.search(r"Done (\d+) runs", proc.stderr)
    reached = [int(n) for n in re.findall(r"^#(\d+)\s", proc.stderr, re.MULTILINE)]
    examples.hit(int(done.group(1)) if done else max(reached, default=0))
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    tail = "\n".join(proc.stderr.splitlines()[-25:])
    assert proc.returncode == 0, f"atheris found a crash {crashes}:\n{tail}"
    assert done is not None, tail
