"""ClickHouse connection and batch-writer settings (``CLICKHOUSE_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from ponix_config.base import PonixSettings
from ponix_config.seed import SeedVariable
from ponix_config.urls import split_credentials

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ClickHouseSettings(PonixSettings):
    """Where envelopes are stored and how they are batched on the way in."""

    model_config = SettingsConfigDict(env_prefix="CLICKHOUSE_")

    url: str = Field(
        "clickhouse://127.0.0.1:9000",
        description="Native-protocol URL, clickhouse:// or clickhouses:// (TLS, port 9440); "
        "user:pass@ accepted.",
    )
    user: str = Field("default", description="User name (or put it in CLICKHOUSE_URL).")
    password: SecretStr = Field(SecretStr(""), description="Password for CLICKHOUSE_USER.")
    database: str = Field("ponix", pattern=_IDENT, description="Database of the envelope table.")
    table: str = Field("processed_envelopes", pattern=_IDENT, description="Envelope table.")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    send_receive_timeout: float = Field(30.0, gt=0, description="Seconds a query may stall.")
    tls_ca_file: Path | None = Field(
        None, description="CA bundle to verify the server; setting it requires TLS."
    )
    tls_cert_file: Path | None = Field(
        None, description="Client certificate for mutual TLS; setting it requires TLS."
    )
    tls_key_file: Path | None = Field(None, description="Client key for mutual TLS.")

    batch_max_rows: int = Field(5000, ge=1, description="Flush when a batch holds this many rows.")
    batch_max_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Flush when a batch's payloads reach this size."
    )
    batch_max_latency: float = Field(
        0.25, gt=0, description="Seconds a row may wait in a batch before it is flushed."
    )
    max_in_flight_rows: int = Field(
        20_000,
        ge=1,
        description="Rows buffered or being inserted; when reached, fetching waits (backpressure).",
    )
    max_in_flight_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        description="Payload bytes buffered, held or being inserted (and delivered by NATS but "
        "not yet settled); when reached, fetching waits. Bounds memory through a store outage.",
    )
    insert_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds one INSERT attempt may take; a slower one is retried with the same "
        "rows and dedup token.",
    )
    retry_max_delay: float = Field(
        30.0,
        gt=0,
        description="Cap of the backoff between attempts of an INSERT that ClickHouse refused or "
        "failed; the batch is held and retried until it is stored or shutdown comes.",
    )
    insert_quorum: int = Field(
        0,
        ge=0,
        description="insert_quorum for replicated tables: the INSERT returns once this many "
        "replicas have the data (0: the server's default, one replica).",
    )

    migrations_dir: Path | None = Field(
        None,
        description="Directory of migration files to apply instead of the ones shipped in "
        "ponix-clickhouse (e.g. migrations/cluster).",
    )

    seed_variables: ClassVar[tuple[SeedVariable, ...]] = (
        SeedVariable("PONIX_CLICKHOUSE_USERNAME", "user"),
        # RS's client spoke HTTP (PONIX_CLICKHOUSE_URL, port 8123) and its migrations the native
        # protocol (PONIX_CLICKHOUSE_NATIVE_URL, host:port): the latter is the one for us.
        SeedVariable(
            "PONIX_CLICKHOUSE_NATIVE_URL",
            "url",
            lambda raw: _native_url(raw),
            replaces_when=lambda ours: _is_http(ours),
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _lift_url_credentials(cls, data: object) -> object:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        split = split_credentials(data["url"])
        data = dict(data)
        data["url"] = split.url
        if split.user is not None:
            data.setdefault("user", split.user)
        if split.password is not None:
            data.setdefault("password", split.password)
        path = urlsplit(split.url).path.strip("/")
        if path:
            data.setdefault("database", path)
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - parsing is the check
        except ValueError:
            msg = f"{value!r} has an invalid port"
            raise ValueError(msg) from None
        if _is_http(value) and parts.hostname:
            secure = parts.scheme == "https"
            native = f"{'clickhouses' if secure else 'clickhouse'}://{parts.hostname}:"
            native += "9440" if secure else "9000"
            msg = (
                f"not a clickhouse://host:port URL but ClickHouse's HTTP interface (port "
                f"{parts.port or 8123}); Ponix speaks the native protocol, on port "
                f"{9440 if secure else 9000} by default: use {native}"
            )
            raise ValueError(msg)
        if parts.scheme not in ("clickhouse", "clickhouses") or not parts.hostname:
            msg = f"{value!r} is not a clickhouse://host:port URL (the native protocol)"
            raise ValueError(msg)
        return value

    @field_validator("migrations_dir", mode="before")
    @classmethod
    def _blank_dir_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("migrations_dir")
    @classmethod
    def _check_migrations_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            msg = "not a directory" if value.exists() else "no such directory"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check_batching(self) -> Self:
        if self.batch_max_rows > self.max_in_flight_rows:
            msg = "CLICKHOUSE_BATCH_MAX_ROWS must not exceed CLICKHOUSE_MAX_IN_FLIGHT_ROWS"
            raise ValueError(msg)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            msg = "CLICKHOUSE_TLS_CERT_FILE and CLICKHOUSE_TLS_KEY_FILE go together"
            raise ValueError(msg)
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (9440 if self.secure else 9000)

    @property
    def secure(self) -> bool:
        """Whether the connection is TLS from its first byte: a ``clickhouses://`` URL, a CA
        file or a client certificate says so."""
        return (
            urlsplit(self.url).scheme == "clickhouses"
            or self.tls_ca_file is not None
            or self.tls_cert_file is not None
        )


def _is_http(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://"))


def _native_url(host_port: str) -> str:
    """RS's ``PONIX_CLICKHOUSE_NATIVE_URL`` (``host:9000``, maybe with a scheme) as our URL."""
    rest = host_port.strip().split("://", 1)[-1]
    return f"clickhouse://{rest}"
