"""The NATS lib's errors: one root, a subclass per way NATS can fail us; ``str()`` is one line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar


def one_line(text: object) -> str:
    """``text`` as a single line, for messages that end up in logs and exit reasons."""
    return " ".join(str(text).split())


class NatsError(Exception):
    """Root of every error ``ponix_nats`` raises; ``code`` is stable, ``str()`` is one line."""

    code: ClassVar[str] = "nats.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = one_line(message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NatsUnavailableError(NatsError):
    """No server answered: refused, timed out, JetStream disabled or not responding."""

    code = "nats.unreachable"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = one_line(reason)


class NatsAuthError(NatsError):
    """The server rejected our credentials, or the credentials could not be read."""

    code = "nats.auth_failed"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = one_line(reason)


class NatsTlsError(NatsError):
    """TLS is required (a ``tls://`` URL or a TLS setting) and the server does not offer it.

    Raised before any credential is sent; retrying would not help.
    """

    code = "nats.tls_required"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = one_line(reason)


class ProvisioningError(NatsError):
    """A stream or consumer exists with a config JetStream will not change to ours."""

    code = "nats.stream_conflict"

    def __init__(
        self,
        stream: str,
        fields: Sequence[str],
        reason: str,
        *,
        consumer: str | None = None,
    ) -> None:
        where = f"stream {stream}" if consumer is None else f"consumer {stream}/{consumer}"
        shown = ", ".join(fields) if fields else "config"
        super().__init__(f"{where}: {shown}: {reason}")
        self.stream = stream
        self.consumer = consumer
        self.fields = tuple(fields)
        self.reason = one_line(reason)


class PublishError(NatsError):
    """JetStream did not acknowledge a publish (no stream, limits, timeout, ...)."""

    code = "nats.publish_failed"

    def __init__(self, subject: str, msg_id: str | None, reason: str) -> None:
        shown = f" (Nats-Msg-Id {msg_id})" if msg_id else ""
        super().__init__(f"{subject}{shown}: {reason}")
        self.subject = subject
        self.msg_id = msg_id
        self.reason = one_line(reason)


class DeadLetterNotFoundError(NatsError):
    """No dead letter has the requested sequence in the DLQ stream."""

    code = "nats.dead_letter_not_found"

    def __init__(self, stream: str, seq: int) -> None:
        super().__init__(f"{stream} has no message {seq}")
        self.stream = stream
        self.seq = seq


class StreamMissingError(NatsError):
    """The envelope stream does not exist, and this caller may not create it."""

    code = "nats.stream_missing"

    def __init__(self, stream: str) -> None:
        super().__init__(
            f"stream {stream} does not exist: the ingester creates it, or `ponix provision`"
        )
        self.stream = stream


class ShrinkRefusedError(ProvisioningError):
    """Provisioning would lower replicas or shrink a limit, and was not allowed to.

    ``shrinks`` are ``"<what>.<field> <old> -> <new>"`` (``what``: stream, dlq_stream)."""

    code = "nats.shrink_refused"

    def __init__(self, stream: str, shrinks: Sequence[str]) -> None:
        fields = [s.split(" ", 1)[0] for s in shrinks]
        reason = (
            f"would shrink {'; '.join(shrinks)}; make the settings match, or allow it with "
            "NATS_ALLOW_SHRINK=true (`ponix provision --allow-shrink`)"
        )
        NatsError.__init__(self, f"stream {stream}: {reason}")
        self.stream = stream
        self.consumer = None
        self.fields = tuple(fields)
        self.reason = one_line(reason)
        self.shrinks = tuple(shrinks)
