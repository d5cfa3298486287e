"""The ingester's rule for naming a stream message, applied by the audit.

The rule itself (``RowBuilder``: the ingester's size limit, the table's time range, the subject
an organization belongs on, and ``delivery_key`` for envelopes without an id) lives in
``ponix_clickhouse``; this module builds it exactly as ``Ingester.start`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ponix_clickhouse import Delivery, Poison, RowBuilder, TimeRange
from ponix_proto import MSG_ID_HEADER

if TYPE_CHECKING:
    from collections.abc import Callable

    from clickhouse_driver import Client as ClickHouseClient

    from ponix_config import ClickHouseSettings, NatsSettings


@dataclass(frozen=True, slots=True)
class Named:
    """A message the ingester stores under ``id``."""

    id: str


@dataclass(frozen=True, slots=True)
class Unstorable:
    """A message the ingester dead-letters, with the ingester's code and reason."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Rekeyed:
    """``msg`` as it would arrive with ``Nats-Msg-Id: key`` (a redriven copy of it)."""

    msg: Delivery
    key: str

    @property
    def subject(self) -> str:
        return self.msg.subject

    @property
    def data(self) -> bytes:
        return self.msg.data

    @property
    def headers(self) -> dict[str, str] | None:
        return {**(self.msg.headers or {}), MSG_ID_HEADER: self.key}

    @property
    def metadata(self) -> Any:  # whatever msg.metadata is (nats-py's Msg.Metadata)
        return self.msg.metadata


class Namer:
    """``name(msg)`` as the ingester would store it, or why it cannot be stored."""

    def __init__(self, builder: RowBuilder) -> None:
        self._builder = builder

    @classmethod
    def for_table(
        cls, client: ClickHouseClient, clickhouse: ClickHouseSettings, nats: NatsSettings
    ) -> Namer:
        """The ingester's RowBuilder for the live table (``Ingester.start`` builds the same);
        blocks on ClickHouse."""
        from ponix_clickhouse import read_table_layout
        from ponix_config import load_settings
        from ponix_ingester import IngesterSettings

        ingester = load_settings(IngesterSettings)
        layout = read_table_layout(client, clickhouse.database, clickhouse.table)
        time_range = TimeRange.for_column_type(
            layout.type_of("occurred_at"), layout.time_scale("occurred_at")
        )
        subject_for = None if ingester.trust_payload_org else nats.subject_for
        return cls.with_limits(
            max_bytes=ingester.max_envelope_bytes, time_range=time_range, subject_for=subject_for
        )

    @classmethod
    def with_limits(
        cls,
        *,
        max_bytes: int,
        time_range: TimeRange,
        subject_for: Callable[[str], str] | None = None,
    ) -> Namer:
        return cls(RowBuilder(max_bytes=max_bytes, time_range=time_range, subject_for=subject_for))

    def name(self, msg: Delivery, key: str | None = None) -> Named | Unstorable:
        """The id ``msg`` is stored under; with ``key``, the id it would be stored under had it
        come with that ``Nats-Msg-Id`` (the same id unless the envelope has none)."""
        built = self._builder.build(msg if key is None else _Rekeyed(msg, key))
        if isinstance(built, Poison):
            return Unstorable(built.code, built.reason)
        return Named(built[0])
