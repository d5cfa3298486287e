"""What each contender is: its processes, whether it writes a table, its target ratio."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

RAW: Final = "raw"
RAW_X2: Final = "raw_x2"
# naive is left out of the default: the slowest contender, it would add the most time to a run.
DEFAULT_CONTENDERS: Final = (
    "raw",
    "raw_x2",
    "ceiling",
    "ponix",
    "ponix_x2",
)
KNOWN: Final = (
    "raw",
    "raw_x2",
    "ceiling",
    "ceiling_x2",
    "naive",
    "naive_x2",
    "ponix",
    "ponix_x2",
)
"""``raw``: the pull protocol plus ack, no decode, no insert (the yardstick). ``ceiling``:
nats-py's ``fetch()`` plus ack. ``naive``: fetch, decode, blocking insert, ack. ``ponix``: the
ingester as shipped (default settings: one process). ``ponix_x2``: two ingesters as shipped on
the same durable consumer (replicas)."""
# Settings a base contender implies (a contender's own ``[...]`` settings override them).
BASE_ENV: Final[Mapping[str, Mapping[str, str]]] = {}
# Contenders that use two processes without being two replicas.
_TWO_PROCESSES: Final[frozenset[str]] = frozenset()
# The figures we hold ourselves to (issue 15), as ratios to the raw contender with as many
# processes, in the same run: (target, moonshot).
TARGETS: Final[Mapping[str, tuple[float, float]]] = {
    "ponix": (0.7, 0.8),
    "ponix_x2": (0.7, 0.8),
}
# What the references reached on this machine when the targets were set (issue 15: raw 81k/s,
# raw x2 118k/s, raw 2.4-2.6x the fetch() ceiling), as ratios to their yardstick.
REFERENCE: Final[Mapping[str, float]] = {"raw_x2": 1.46, "ceiling": 0.4}

_SPEC = re.compile(r"^(?P<base>[a-z_0-9]+)(\[(?P<env>[^\]]*)\])?$")
_ENV_ITEM = re.compile(r"^[A-Z][A-Z0-9_]*=.*$")


@dataclass(frozen=True, slots=True)
class ContenderSpec:
    """``ponix_x2[NATS_BATCH_SIZE=500+NATS_FETCH_EXPIRES=0.5]``: a base contender plus extra
    ingester environment (only for ``ponix*``), ``+``-separated."""

    base: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.env:
            return self.base
        return f"{self.base}[{'+'.join(f'{k}={v}' for k, v in self.env.items())}]"

    @property
    def slug(self) -> str:
        """A name valid as a consumer and database name."""
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.label).strip("_").lower()[:60]

    @property
    def kind(self) -> str:
        """``raw``, ``ceiling``, ``naive`` or ``ponix``."""
        return self.base.removesuffix("_x2").removesuffix("_worker")

    @property
    def ingester_env(self) -> dict[str, str]:
        """The ingester settings of a ``ponix`` contender: its base's, then its own."""
        return {**BASE_ENV.get(self.base, {}), **self.env}

    @property
    def processes(self) -> int:
        return 2 if self.base.endswith("_x2") else 1

    @property
    def cores(self) -> int:
        """Processes doing the work: the replicas, or an ingester and its worker."""
        return 2 if self.processes == 2 or self.base in _TWO_PROCESSES else 1

    @property
    def yardstick(self) -> str:
        """The contender its ratio is to: ``raw`` with as many processes, or, for ``raw_x2``
        itself, ``raw`` (how far a second process scales)."""
        return RAW_X2 if self.cores == 2 and self.base != RAW_X2 else RAW

    @property
    def writes_rows(self) -> bool:
        return self.kind in ("naive", "ponix")

    def argv(
        self,
        *,
        nats_url: str,
        stream: str,
        consumer: str,
        batch: int,
        clickhouse_url: str,
        database: str,
        ingester_python: str = sys.executable,
    ) -> list[list[str]]:
        if self.kind == "ponix":
            one = [ingester_python, "-m", "ponix_ingester"]
        else:
            one = [
                sys.executable,
                "-m",
                "ponix_bench.contender",
                self.kind,
                "--nats-url",
                nats_url,
                "--stream",
                stream,
                "--consumer",
                consumer,
                "--batch",
                str(batch),
            ]
            if self.kind == "naive":
                one += ["--clickhouse-url", clickhouse_url, "--database", database]
        return [list(one) for _ in range(self.processes)]


def parse_contenders(text: str) -> tuple[ContenderSpec, ...]:
    """``"raw,ponix,ponix[NATS_BATCH_SIZE=500]"`` -> specs; raises ``ValueError``."""
    specs: list[ContenderSpec] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        match = _SPEC.match(raw)
        if match is None or match["base"] not in KNOWN:
            msg = f"unknown contender {raw!r} (known: {', '.join(KNOWN)})"
            raise ValueError(msg)
        env: dict[str, str] = {}
        if match["env"]:
            if not match["base"].startswith("ponix"):  # ponix, ponix_x2
                msg = f"{raw!r}: only ponix contenders take settings"
                raise ValueError(msg)
            for item in match["env"].split("+"):
                if not _ENV_ITEM.match(item):
                    msg = f"{raw!r}: {item!r} is not NAME=value"
                    raise ValueError(msg)
                key, _, value = item.partition("=")
                env[key] = value
        specs.append(ContenderSpec(match["base"], env))
    if not specs:
        raise ValueError("no contenders")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError("a contender is listed twice")
    return tuple(specs)
