"""NATS connection, JetStream stream/consumer and dead-letter settings (``NATS_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from ponix_config.base import PonixSettings
from ponix_config.seed import SeedVariable
from ponix_config.urls import split_credentials

_NAME = r"^[A-Za-z0-9_-]+$"
_SUBJECT = r"^[A-Za-z0-9_.>*-]+$"


class NatsSettings(PonixSettings):
    """How to reach NATS and how the envelope stream and its durable consumer are shaped."""

    model_config = SettingsConfigDict(env_prefix="NATS_")

    url: str = Field(
        "nats://127.0.0.1:4222",
        description="Server URL(s), comma-separated; user:password@ in the URL is accepted.",
    )
    user: str | None = Field(None, description="User name (or put it in NATS_URL).")
    password: SecretStr | None = Field(None, description="Password for NATS_USER.")
    token: SecretStr | None = Field(None, description="Auth token.")
    creds_file: Path | None = Field(None, description="A .creds file (JWT + nkey seed).")
    nkey_seed_file: Path | None = Field(None, description="An nkey seed file.")
    tls_ca_file: Path | None = Field(None, description="CA bundle to verify the server.")
    tls_cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    tls_key_file: Path | None = Field(None, description="Client key for mutual TLS.")
    tls_handshake_first: bool = Field(
        False,
        description="Open TLS before the server's first line; the server must be set up for it "
        "(handshake_first in its tls block). Without it, TLS is still required whenever a "
        "tls:// URL or a TLS file is given: a server that does not offer TLS is refused.",
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds per connection attempt.")
    max_reconnect_attempts: int = Field(-1, ge=-1, description="-1 reconnects forever.")

    stream: str = Field("PROCESSED_ENVELOPES", pattern=_NAME, description="JetStream stream.")
    subject_prefix: str = Field(
        "processed_envelopes",
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="Publish on <prefix>.<organization_id>; the stream binds <prefix>.>.",
    )
    storage: Literal["file", "memory"] = Field("file", description="Stream storage.")
    replicas: int = Field(1, ge=1, le=5, description="Stream replicas (3 in a cluster).")
    duplicate_window: float = Field(
        120.0, gt=0, description="Seconds during which a repeated Nats-Msg-Id is dropped."
    )
    max_msg_size: int = Field(
        1_048_576, gt=0, description="Largest envelope in bytes the stream accepts."
    )
    max_age: float = Field(
        7 * 24 * 3600.0, ge=0, description="Seconds a message is retained; 0 keeps forever."
    )
    max_bytes: int = Field(-1, ge=-1, description="Stream size limit in bytes; -1 is unlimited.")
    allow_shrink: bool = Field(
        False,
        description="Let provisioning lower replicas or shrink limits (max_age, max_bytes, "
        "max_msg_size, duplicate_window) of an existing stream.",
    )

    consumer: str = Field("clickhouse-writer", pattern=_NAME, description="Durable consumer.")
    batch_size: int = Field(1000, ge=1, le=100_000, description="Messages per fetch.")
    fetch_expires: float = Field(1.0, gt=0, description="Seconds a fetch waits for messages.")
    ack_wait: float = Field(30.0, gt=0, description="Seconds before an unacked message returns.")
    max_deliver: int = Field(
        10,
        ge=1,
        description="Deliveries that failed for the message's own sake (a processor crash) before "
        "it is dead-lettered with its last error. Counted by the ingester; a store failure never "
        "counts (the batch is held); the server never drops a message on its own.",
    )
    max_ack_pending: int = Field(
        20_000, ge=1, description="Unacked messages the server lets the consumer hold."
    )
    nak_delay_initial: float = Field(1.0, gt=0, description="Seconds of the first nak delay.")
    nak_delay_max: float = Field(60.0, gt=0, description="Cap of the exponential nak delay.")

    dlq_stream: str = Field("PROCESSED_ENVELOPES_DLQ", pattern=_NAME, description="DLQ stream.")
    dlq_subject: str = Field(
        "processed_envelopes_dlq", pattern=_SUBJECT, description="Subject of dead letters."
    )
    dlq_max_age: float = Field(30 * 24 * 3600.0, ge=0, description="DLQ retention in seconds.")

    seed_variables: ClassVar[tuple[SeedVariable, ...]] = (
        SeedVariable("PONIX_NATS_SUBJECT", "subject_prefix", lambda raw: _subject_prefix(raw)),
        SeedVariable("PONIX_NATS_BATCH_WAIT_SECS", "fetch_expires"),
    )

    @model_validator(mode="before")
    @classmethod
    def _lift_url_credentials(cls, data: object) -> object:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        urls = [split_credentials(u.strip()) for u in data["url"].split(",") if u.strip()]
        data = dict(data)
        data["url"] = ",".join(u.url for u in urls)
        for split in urls:
            if split.user is not None and split.password is None and not data.get("token"):
                data["token"] = split.user  # nats://TOKEN@host is the token form
            elif split.user is not None:
                data.setdefault("user", split.user)
                data.setdefault("password", split.password)
        return data

    @field_validator("url")
    @classmethod
    def _check_scheme(cls, value: str) -> str:
        for one in value.split(","):
            if not one.startswith(("nats://", "tls://", "ws://", "wss://")):
                msg = f"{one!r} is not a nats://, tls://, ws:// or wss:// URL"
                raise ValueError(msg)
            try:
                urlsplit(one).port  # noqa: B018 - parsing is the check
            except ValueError:
                msg = f"{one!r} has an invalid port"
                raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _check_coherence(self) -> Self:
        if self.nak_delay_initial > self.nak_delay_max:
            msg = "must not exceed NATS_NAK_DELAY_MAX"
            raise ValueError(msg)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            msg = "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together"
            raise ValueError(msg)
        if self.tls_required and any(url.startswith("ws://") for url in self.servers):
            msg = "ws:// is not encrypted, and TLS is required here: use wss://"
            raise ValueError(msg)
        return self

    @property
    def tls_required(self) -> bool:
        """Whether every connection must be TLS before any credential is sent: a ``tls://``
        or ``wss://`` URL, a CA file, a client certificate or a TLS-first handshake says so."""
        return (
            self.tls_handshake_first
            or self.tls_ca_file is not None
            or self.tls_cert_file is not None
            or any(url.startswith(("tls://", "wss://")) for url in self.servers)
        )

    @property
    def servers(self) -> list[str]:
        return self.url.split(",")

    @property
    def subjects(self) -> list[str]:
        return [f"{self.subject_prefix}.>"]

    def subject_for(self, organization_id: str) -> str:
        """The subject an envelope of ``organization_id`` is published on."""
        token = "".join(c if c.isalnum() or c in "-_" else "_" for c in organization_id)
        return f"{self.subject_prefix}.{token or '_'}"


def _subject_prefix(subject: str) -> str:
    """RS's consumer filter (``processed_envelopes.>``) as our subject prefix."""
    for wildcard in (".>", ".*"):
        if subject.endswith(wildcard):
            return subject.removesuffix(wildcard)
    return subject
