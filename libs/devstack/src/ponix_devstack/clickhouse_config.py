"""The config.xml and users.xml the devstack writes for a ClickHouse server.

Both files use the ``<yandex>`` root: ClickHouse 18.16 (Debian) knows only that one, and
modern releases treat ``<yandex>`` and ``<clickhouse>`` as the same root. Only settings that
both generations understand appear here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ROOT = "yandex"
DEFAULT_PROFILE = "default"
READONLY_PROFILE = "readonly"


@dataclass(frozen=True, slots=True)
class ClickHouseUser:
    """A users.xml user: plaintext password (dev only), any address, profile by ``readonly``."""

    name: str
    password: str = ""
    readonly: bool = False

    def __post_init__(self) -> None:
        if not _IDENT.match(self.name):
            msg = f"ClickHouse user name {self.name!r} must match [A-Za-z_][A-Za-z0-9_]*"
            raise ValueError(msg)

    @property
    def profile(self) -> str:
        return READONLY_PROFILE if self.readonly else DEFAULT_PROFILE


@dataclass(frozen=True, slots=True)
class ClickHouseLayout:
    """Where one server keeps its files, all under ``data_dir``."""

    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.data_dir / "config.xml"

    @property
    def users_file(self) -> Path:
        return self.data_dir / "users.xml"

    @property
    def data_path(self) -> Path:
        return self.data_dir / "data"

    @property
    def tmp_path(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def user_files_path(self) -> Path:
        return self.data_dir / "user_files"

    @property
    def format_schema_path(self) -> Path:
        return self.data_dir / "format_schemas"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "log" / "clickhouse-server.log"

    @property
    def error_log_file(self) -> Path:
        return self.data_dir / "log" / "clickhouse-server.err.log"

    @property
    def stdout_file(self) -> Path:
        return self.data_dir / "clickhouse-server.stdout.log"

    def directories(self) -> tuple[Path, ...]:
        return (
            self.data_path,
            self.tmp_path,
            self.user_files_path,
            self.format_schema_path,
            self.log_file.parent,
        )


def render_server_config(
    layout: ClickHouseLayout, *, tcp_port: int, http_port: int, listen_host: str
) -> str:
    root = ET.Element(ROOT)
    logger = ET.SubElement(root, "logger")
    _leaf(logger, "level", "warning")
    _leaf(logger, "log", str(layout.log_file))
    _leaf(logger, "errorlog", str(layout.error_log_file))
    _leaf(logger, "console", "0")
    _leaf(root, "http_port", str(http_port))
    _leaf(root, "tcp_port", str(tcp_port))
    _leaf(root, "listen_host", listen_host)
    # ClickHouse concatenates these paths with file names: the trailing slash is required.
    _leaf(root, "path", f"{layout.data_path}/")
    _leaf(root, "tmp_path", f"{layout.tmp_path}/")
    _leaf(root, "user_files_path", f"{layout.user_files_path}/")
    _leaf(root, "format_schema_path", f"{layout.format_schema_path}/")
    _leaf(root, "users_config", layout.users_file.name)
    _leaf(root, "default_profile", DEFAULT_PROFILE)
    _leaf(root, "default_database", "default")
    # DateTime columns read back the same on every machine, like the UTC container image.
    _leaf(root, "timezone", "UTC")
    _leaf(root, "mark_cache_size", "5368709120")
    _leaf(root, "max_concurrent_queries", "100")
    return _document(root)


def render_users(users: Sequence[ClickHouseUser]) -> str:
    names = [user.name for user in users]
    if not users or len(set(names)) != len(names):
        msg = f"users.xml needs at least one user and unique names, got {names}"
        raise ValueError(msg)
    root = ET.Element(ROOT)
    profiles = ET.SubElement(root, "profiles")
    ET.SubElement(profiles, DEFAULT_PROFILE)
    readonly = ET.SubElement(profiles, READONLY_PROFILE)
    _leaf(readonly, "readonly", "1")
    users_node = ET.SubElement(root, "users")
    for user in users:
        node = ET.SubElement(users_node, user.name)
        _leaf(node, "password", user.password)
        networks = ET.SubElement(node, "networks")
        _leaf(networks, "ip", "::/0")
        _leaf(node, "profile", user.profile)
        _leaf(node, "quota", "default")
    quotas = ET.SubElement(root, "quotas")
    ET.SubElement(quotas, "default")
    return _document(root)


def _leaf(parent: ET.Element, tag: str, text: str) -> ET.Element:
    node = ET.SubElement(parent, tag)
    node.text = text
    return node


def _document(root: ET.Element) -> str:
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0"?>\n<!-- Written by ponix_devstack. -->\n{body}\n'
