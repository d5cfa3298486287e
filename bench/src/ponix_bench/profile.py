"""The top of the py-spy profiles ``ponix bench --profile DIR`` records.

``python -m ponix_bench.profile DIR [--contender ponix] [--top N] [--match TEXT]``: over the
contender's profiles in DIR (``r<run>-<contender>.txt``, py-spy's raw collapsed stacks, one
``frame;frame;... count`` line per stack), the share of samples in which each function is on
the stack (inclusive) and at the top of it (self). A function is ``name (file)``: line numbers
are dropped, so a function counts once per sample.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_LINE_NUMBER = re.compile(r":\d+\)$")


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    inclusive: Counter[str]
    own: Counter[str]

    def top(self, counter: Counter[str], n: int, match: str = "") -> list[tuple[float, str]]:
        found = [(c, name) for name, c in counter.most_common() if match in name]
        return [(100.0 * c / max(self.samples, 1), name) for c, name in found[:n]]


def _function(frame: str) -> str:
    return _LINE_NUMBER.sub(")", frame.strip())


def read_profiles(paths: Iterable[Path]) -> Profile:
    samples = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _LINE.match(line)
            if match is None:
                continue
            count = int(match["count"])
            # The first frame names the process (py-spy --subprocesses), not a function.
            frames = [_function(f) for f in match["stack"].split(";")[1:]]
            if not frames:
                continue
            samples += count
            for name in set(frames):
                inclusive[name] += count
            own[frames[-1]] += count
    return Profile(samples, inclusive, own)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ponix_bench.profile")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--contender", default="ponix", help="Whose profiles (its slug).")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="Only functions whose name contains this.")
    args = parser.parse_args(argv)
    paths = sorted(args.directory.glob(f"r*-{args.contender}.txt"))
    if not paths:
        parser.error(f"no r*-{args.contender}.txt profiles in {args.directory}")
    profile = read_profiles(paths)
    print(f"{args.contender}: {profile.samples:,} samples in {len(paths)} profile(s)")
    for title, counter in (("inclusive", profile.inclusive), ("self", profile.own)):
        print(f"\n{title}:")
        for share, name in profile.top(counter, args.top, args.match):
            print(f"{share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
