"""How ``ponix stream peek`` shows a message: decoded envelope, or the bytes and why not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from ponix_cli.peek import Peeked, describe
from ponix_proto import pb

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@dataclass
class _Seq:
    stream: int


@dataclass
class _Meta:
    sequence: _Seq
    timestamp: datetime


@dataclass
class _Msg:
    data: bytes
    subject: str = "processed_envelopes.acme"
    headers: dict[str, str] | None = None

    @property
    def metadata(self) -> _Meta:
        return _Meta(_Seq(7), AT)


def _peeked(data: bytes, headers: dict[str, str] | None = None) -> Peeked:
    return Peeked.of(_Msg(data, headers=headers), 7)  # type: ignore[arg-type]


def test_an_envelope_shows_its_id_org_device_times_data_and_headers() -> None:
    env = pb.ProcessedEnvelope(id="e-1", organization_id="acme", end_device_id="d-1")
    env.occurred_at.FromDatetime(AT)
    env.data.update({"temperature": 21.5})
    text = describe(_peeked(env.SerializeToString(), {"Nats-Msg-Id": "e-1"}))
    lines = text.splitlines()
    assert lines[0].startswith("#7  processed_envelopes.acme  stored 2026-12-06 10:00:00.000 UTC")
    assert "e-1" in lines[1]
    assert "org acme" in lines[1]
    assert "device d-1" in lines[1]
    assert "2026-12-06T10:00:00Z" in lines[2]
    assert lines[3].split() == ["data", '{"temperature":21.5}']
    assert lines[4].split() == ["headers", "Nats-Msg-Id=e-1"]


def test_an_undecodable_message_shows_why_and_its_first_bytes() -> None:
    item = _peeked(b"\xff\xfenot protobuf")
    assert item.envelope is None
    text = describe(item)
    assert "undecodable" in text
    assert "not protobuf" in text
    body = item.to_json()
    assert body["envelope"] is None
    assert body["error"]
    assert body["payload_base64"] == "//5ub3QgcHJvdG9idWY="
    json.dumps(body)
