"""The reference contenders, each run as its own process: ``python -m ponix_bench.contender``.

* ``ceiling``: ``fetch(batch)`` then ``await msg.ack()`` for each message; no decode, no insert.
  This is nats-py's own per-message cost, the bound of one process (DESIGN §6).
* ``naive``: fetch, decode each envelope with upb into a row the obvious way (both timestamps to
  ``datetime``, ``data`` through ``json_format.MessageToDict`` and ``json.dumps``), insert the
  batch with a blocking clickhouse-driver call on the event loop's thread, then ack each.

Both run on uvloop like the ingester, bind the durable consumer the harness made, and consume
until SIGTERM. Deliberately independent of ``ponix_ingester``: the reference must not move when
the ingester is tuned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any

import nats
import nats.errors
import uvloop
from nats.aio.msg import Msg

FETCH_EXPIRES = 1.0


def naive_row_builder() -> Callable[[Msg], tuple[Any, ...]]:
    """The row a straightforward implementation builds from one message (imports made here:
    the ceiling's memory figure is nats-py's alone)."""
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

    task = asyncio.ensure_future(loop_forever())
    loop = asyncio.get_running_loop()
    # The harness stops a contender once everything is acked: cancelling the waiting fetch is
    # then safe, and quicker than letting it expire.
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    with contextlib.suppress(asyncio.CancelledError, nats.errors.ConnectionClosedError):
        await task
    await nc.flush()
    await nc.close()
    if client is not None:
        client.disconnect()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ponix_bench.contender")
    parser.add_argument("kind", choices=("ceiling", "naive"))
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
