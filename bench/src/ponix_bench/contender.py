"""The reference contenders, each run as its own process: ``python -m ponix_bench.contender``.

* ``raw``: JetStream's pull protocol taken directly through nats-py's public API, plus
  ``await msg.ack()`` for each message; no decode, no insert. One inbox subscription with a
  callback, one ``CONSUMER.MSG.NEXT`` request open at a time (``batch``, ``expires``), the next
  one sent as soon as the previous one's messages all arrived or its status (408, 409) came.
  This is what receiving and acking a message costs on this stack: the yardstick of every ratio.
* ``ceiling``: ``PullSubscription.fetch(batch)`` then ``await msg.ack()`` for each message; no
  decode, no insert. nats-py's own pull loop, which spends a task, a ``wait_for`` and a uuid4
  per message: a reference row, no longer the limit.
* ``naive``: fetch, decode each envelope with upb into a row the obvious way (both timestamps to
  ``datetime``, ``data`` through ``json_format.MessageToDict`` and ``json.dumps``), insert the
  batch with a blocking clickhouse-driver call on the event loop's thread, then ack each.

All run on uvloop like the ingester, use the durable consumer the harness made, and consume
until SIGTERM. Deliberately independent of ``ponix_ingester`` and ``ponix_nats``: the yardstick
must not move when the product is tuned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC
from typing import Any

import nats
import nats.errors
import uvloop
from nats.aio.client import Client
from nats.aio.msg import Msg

FETCH_EXPIRES = 1.0
# A request whose end never came (no connection loss is expected in the bench, but a hang would
# stop the clock only at the harness's deadline) is given up this long after it expired.
REQUEST_GRACE = 1.0
KINDS = ("raw", "ceiling", "naive")


class RawPull:
    """The pull protocol by hand: the inbox callback acks each message and counts it against
    the open request; the loop sends the next request once the open one ended."""

    def __init__(self, nc: Client, stream: str, consumer: str, batch: int) -> None:
        self._nc = nc
        self._batch = batch
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._body = json.dumps(
            {"batch": batch, "expires": int(FETCH_EXPIRES * 1_000_000_000)}
        ).encode()
        self._inbox = nc.new_inbox()
        self._reply = ""
        self._remaining = 0
        self._ended = asyncio.Event()

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:
            self._remaining -= 1
            if self._remaining == 0:
                self._ended.set()
            await msg.ack()
        elif msg.subject == self._reply:
            # JetStream's status on the request's own subject (408 at expires, 409 ...) ends it;
            # one for an earlier request (already ended by its last message) is ignored.
            self._ended.set()

    async def run(self) -> None:
        # Each message is acked in the callback; nats-py's pending limits are far above the
        # one batch that can be in flight.
        await self._nc.subscribe(self._inbox + ".*", cb=self._on_msg)
        sent = 0
        while True:
            sent += 1
            self._reply = f"{self._inbox}.{sent}"
            self._remaining = self._batch
            self._ended.clear()
            await self._nc.publish(self._subject, self._body, reply=self._reply)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FETCH_EXPIRES + REQUEST_GRACE):
                    await self._ended.wait()


def naive_row_builder() -> Callable[[Msg], tuple[Any, ...]]:
    """The row a straightforward implementation builds from one message (imports made here:
    the raw and ceiling contenders' memory is nats-py's alone)."""
    from google.protobuf import json_format

    from ponix_proto import pb

    parse = pb.ProcessedEnvelope.FromString

    def naive_row(msg: Msg) -> tuple[Any, ...]:
        env = parse(msg.data)
        envelope_id = env.id
        if not envelope_id:
            headers = msg.headers or {}
            meta = msg.metadata
            envelope_id = headers.get("Nats-Msg-Id") or f"{meta.stream}:{meta.sequence.stream}"
        data = json.dumps(json_format.MessageToDict(env.data), separators=(",", ":"))
        return (
            envelope_id,
            env.organization_id,
            env.end_device_id,
            env.occurred_at.ToDatetime(UTC),
            env.processed_at.ToDatetime(UTC),
            data,
        )

    return naive_row


async def consume(args: argparse.Namespace) -> None:
    nc = await nats.connect(args.nats_url, name=f"ponix-bench-{args.kind}")
    if args.kind == "raw":
        await _until_sigterm(nc, RawPull(nc, args.stream, args.consumer, args.batch).run())
        return
    js = nc.jetstream()
    psub = await js.pull_subscribe_bind(durable=args.consumer, stream=args.stream)
    client: Any = None
    query = ""
    naive_row: Callable[[Msg], tuple[Any, ...]] | None = None
    if args.kind == "naive":
        from clickhouse_driver import Client

        from ponix_clickhouse import ENVELOPE_COLUMNS

        naive_row = naive_row_builder()
        client = Client.from_url(args.clickhouse_url)
        columns = ", ".join(ENVELOPE_COLUMNS)
        query = f"INSERT INTO `{args.database}`.`processed_envelopes` ({columns}) VALUES"
    batch = args.batch

    async def loop_forever() -> None:
        while True:
            try:
                msgs: Sequence[Msg] = await psub.fetch(batch, timeout=FETCH_EXPIRES)
            except TimeoutError:
                continue
            if naive_row is not None:
                rows = [naive_row(msg) for msg in msgs]
                client.execute(query, rows)
            for msg in msgs:
                await msg.ack()

    try:
        await _until_sigterm(nc, loop_forever())
    finally:
        if client is not None:
            client.disconnect()


async def _until_sigterm(nc: Client, consuming: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(consuming)
    loop = asyncio.get_running_loop()
    # The harness stops a contender once everything is acked: cancelling the waiting request is
    # then safe, and quicker than letting it expire.
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    with contextlib.suppress(asyncio.CancelledError, nats.errors.ConnectionClosedError):
        await task
    await nc.flush()
    await nc.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ponix_bench.contender")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clickhouse-url", default="")
    parser.add_argument("--database", default="")
    args = parser.parse_args(argv)
    if args.kind == "naive" and not (args.clickhouse_url and args.database):
        parser.error("naive needs --clickhouse-url and --database")
    uvloop.run(consume(args))


if __name__ == "__main__":
    main()
