"""What ``docker/observability`` reads, and what a service offers, as metric series names.

The alert rules and the Grafana dashboard name series (``ponix_rows_inserted_total``,
``ponix_insert_duration_seconds_bucket``); prometheus_client describes families
(``ponix_rows_inserted``, a counter). :func:`series_names` turns the one into the other, so a
test can check that every series the rules and the dashboard read is one a service exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO: Final = Path(__file__).resolve().parents[2]
OBSERVABILITY: Final = REPO / "docker" / "observability"
ALERTS: Final = OBSERVABILITY / "alerts.yml"
DASHBOARD: Final = OBSERVABILITY / "grafana" / "ponix-dashboard.json"

_NAME: Final = re.compile(r"\bponix_[a-z0-9_]+")
# The series a family of each type is exposed as (the text format prometheus_client writes).
_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}


@dataclass(frozen=True, slots=True)
class Reference:
    """A series name read by a rule or a panel."""

    name: str
    where: str
    """``alert PonixBatchHeld`` or ``panel Insert duration``."""


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in collapsed rows too (rows themselves excluded)."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", ())
        else:
            yield panel


def references() -> list[Reference]:
    """Every ``ponix_*`` series named by an alert (expression and annotations) or the dashboard
    (panel queries and template variables)."""
    found: list[Reference] = []
    for rule in alert_rules():
        text = " ".join([rule["expr"], *rule.get("annotations", {}).values()])
        found.extend(Reference(name, f"alert {rule['alert']}") for name in _NAME.findall(text))
    board = dashboard()
    for panel in panels(board):
        for target in panel["targets"]:
            where = f"panel {panel['title']}"
            found.extend(Reference(name, where) for name in _NAME.findall(target["expr"]))
    for variable in board["templating"]["list"]:
        query = variable.get("definition") or ""
        where = f"variable {variable['name']}"
        found.extend(Reference(name, where) for name in _NAME.findall(query))
    return found


def series_names(families: Iterable[tuple[str, str]]) -> set[str]:
    """The series names of ``(family name, type)`` pairs."""
    return {name + suffix for name, kind in families for suffix in _SUFFIXES[kind]}


def exposed(text: str) -> tuple[set[str], set[str]]:
    """From one ``/metrics`` scrape: the series names of every family it describes, and the
    names of the series that have at least one sample."""
    families = list(text_string_to_metric_families(text))
    described = series_names((family.name, family.type) for family in families)
    sampled = {sample.name for family in families for sample in family.samples}
    return described, sampled
