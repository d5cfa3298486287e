"""What each contender is: its processes, whether it writes a table, its target ratio."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

CEILING: Final = "ceiling"
DEFAULT_CONTENDERS: Final = (
    "ceiling",
    "ceiling_x2",
    "naive",
    "ponix",
    "ponix_worker",
    "ponix_x2",
)
KNOWN: Final = (
    "ceiling",
    "ceiling_x2",
    "naive",
    "naive_x2",
    "ponix",
    "ponix_worker",
    "ponix_x2",
)
"""``ponix``: the ingester as shipped (default settings: one process). ``ponix_worker``:
``INGESTER_WORKERS=1``, decoding and inserting in a worker process, so one ingester uses both
cores. ``ponix_x2``: two ingesters as shipped on the same durable consumer (replicas)."""
# Settings a base contender implies (a contender's own ``[...]`` settings override them).
BASE_ENV: Final[Mapping[str, Mapping[str, str]]] = {"ponix_worker": {"INGESTER_WORKERS": "1"}}
# DESIGN §5: the figures we hold ourselves to, as ratios to the one-process ceiling: one
# process >= 0.85, both cores (a worker process, or two ingesters) >= 1.5.
TARGETS: Final[Mapping[str, float]] = {"ponix": 0.85, "ponix_worker": 1.5, "ponix_x2": 1.5}
# DESIGN §6: what the references reached on this machine when the targets were set.
REFERENCE: Final[Mapping[str, float]] = {
    "ceiling": 1.0,
    "ceiling_x2": 2.08,
    "naive": 0.65,
    "naive_x2": 0.98,
}

_SPEC = re.compile(r"^(?P<base>[a-z_0-9]+)(\[(?P<env>[^\]]*)\])?$")
_ENV_ITEM = re.compile(r"^[A-Z][A-Z0-9_]*=.*$")


@dataclass(frozen=True, slots=True)
class ContenderSpec:
    """``ponix_x2[INGESTER_WORKERS=1+NATS_BATCH_SIZE=500]``: a base contender plus extra
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
        """``ceiling``, ``naive`` or ``ponix``."""
        return self.base.removesuffix("_x2").removesuffix("_worker")

    @property
    def ingester_env(self) -> dict[str, str]:
        """The ingester settings of a ``ponix`` contender: its base's, then its own."""
        return {**BASE_ENV.get(self.base, {}), **self.env}

    @property
    def processes(self) -> int:
        return 2 if self.base.endswith("_x2") else 1

    @property
    def writes_rows(self) -> bool:
        return self.kind != CEILING

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.base)

    def argv(
        self,
        *,
        nats_url: str,
        stream: str,
        consumer: str,
        batch: int,
        clickhouse_url: str,
        database: str,
    ) -> list[list[str]]:
        if self.kind == "ponix":
            one = [sys.executable, "-m", "ponix_ingester"]
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
    """``"ceiling,ponix,ponix[INGESTER_WORKERS=1]"`` -> specs; raises ``ValueError``."""
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
            if not match["base"].startswith("ponix"):  # ponix, ponix_worker, ponix_x2
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
