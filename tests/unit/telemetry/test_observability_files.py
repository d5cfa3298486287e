"""docker/observability: the alert rules, the Grafana dashboard and the compose profile read only
metrics Ponix exports, and are what Prometheus, Grafana and Compose accept.

Where ``promtool`` is installed (Debian's ``prometheus`` package; ``make setup`` installs it as
root), the rules and the Prometheus configuration are checked by it and the rules' own unit tests
(``alerts.test.yml``) run; the images themselves cannot be pulled here. The running-service side
(every name on a real ingester's ``/metrics``) is ``tests/e2e/test_observability.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from itertools import combinations
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from ponix_telemetry import metrics
from tests.support.observability import (
    OBSERVABILITY,
    REPO,
    alert_rules,
    dashboard,
    panels,
    references,
    series_names,
)

COMPOSE = OBSERVABILITY / "compose.yaml"
COMPOSE_SPEC = REPO / "tests" / "unit" / "deploy" / "compose-spec.json"
# What issue 14 asks the rules to cover, by alert name.
REQUIRED_ALERTS = {
    "PonixEndToEndLagHigh",
    "PonixDeadLetterGrowing",
    "PonixInsertFailures",
    "PonixLastInsertStale",
    "PonixBatchHeld",
}
_IMAGE = re.compile(r"\$\{([A-Z_]+_IMAGE):-([^}]+)\}")


def _families() -> list[tuple[str, str]]:
    """(name, type) of every metric ``ponix_telemetry.metrics`` defines."""
    return [
        (family.name, family.type)
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    ]


def _exported_series() -> set[str]:
    return series_names(_families())


def test_every_metric_the_rules_and_the_dashboard_read_is_exported() -> None:
    exported = _exported_series()
    found = references()
    assert len({ref.name for ref in found}) >= 20
    missing = sorted({f"{ref.name} ({ref.where})" for ref in found if ref.name not in exported})
    assert not missing, missing


def test_rules_cover_the_required_alerts_and_say_what_to_do() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    assert set(names) >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_series_shared_by_replicas_are_never_summed() -> None:
    """Every replica of a consumer reports the consumer's pending counts and the DLQ's depth:
    summing them over replicas would multiply them."""
    shared = ("ponix_consumer_pending_messages", "ponix_consumer_ack_pending_messages")
    shared += ("ponix_dead_letter_messages",)
    exprs = [rule["expr"] for rule in alert_rules()]
    exprs += [t["expr"] for panel in panels(dashboard()) for t in panel["targets"]]
    for expr in exprs:
        for name in shared:
            for match in re.finditer(rf"(\w+)\s*(?:by\s*\([^)]*\)\s*)?\(\s*{name}\b", expr):
                assert match.group(1) not in {"sum", "avg"}, f"{match.group(1)}: {expr}"


def test_dashboard_panels_have_unique_ids_queries_and_do_not_overlap() -> None:
    board = dashboard()
    assert (board["uid"], board["title"]) == ("ponix-pipeline", "Ponix pipeline")
    every = list(board["panels"])
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in board["templating"]["list"]}
    for panel in panels(board):
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__range"}
            assert used <= variables, (panel["title"], used - variables)

    def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        return {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }

    for first, second in combinations(every, 2):
        assert not cells(first) & cells(second), (first["title"], second["title"])


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    grafana = OBSERVABILITY / "grafana"
    sources = yaml.safe_load((grafana / "datasources.yaml").read_text(encoding="utf-8"))
    (source,) = sources["datasources"]
    default = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert default["current"]["value"] == source["uid"]
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((grafana / "dashboards.yaml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    mounts = dict(
        str(volume).split(":")[:2] for volume in compose["services"]["grafana"]["volumes"]
    )
    target = mounts["./grafana/ponix-dashboard.json"]
    assert Path(target).parent == Path(provider["options"]["path"])


def test_compose_profile_is_valid_optional_and_scrapes_the_services() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    schema = json.loads(COMPOSE_SPEC.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(compose)
    assert compose["include"] == ["../compose.yaml"]
    base = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        assert service["profiles"] == ["observability"], name
        assert _IMAGE.fullmatch(service["image"]), (name, service["image"])
        assert service["restart"] == "unless-stopped", name
        for port in service["ports"]:
            assert port.startswith("127.0.0.1:"), (name, port)
        for volume in service["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (OBSERVABILITY / source).is_file(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    prometheus = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text(encoding="utf-8"))
    targets = [
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    ]
    assert sorted(targets) == ["ingester:9464", "producer:9464"]
    for target in targets:
        service, port = target.split(":")
        assert base["services"][service]["environment"]["HTTP_PORT"] == port


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
@pytest.mark.parametrize(
    "command",
    [
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts.test.yml"),
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_rules_and_the_config(command: tuple[str, ...]) -> None:
    done = subprocess.run(
        ["promtool", *command],
        cwd=OBSERVABILITY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_reference_lists_exactly_the_exported_metrics() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(ponix_[a-z0-9_]+)` \| (\w+)", readme, flags=re.MULTILINE)
    suffix = {"counter": "_total", "info": "_info"}
    exported = {name + suffix.get(kind, ""): kind for name, kind in _families()}
    assert len(listed) == len(dict(listed)), "a metric is listed twice"
    assert {name for name, _ in listed} == set(exported)
    for name, kind in listed:
        assert kind == {"info": "gauge"}.get(exported[name], exported[name]), name
