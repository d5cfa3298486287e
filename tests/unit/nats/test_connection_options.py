"""connect()'s pure parts: what may be shown, TLS contexts, which errors mean "rejected"."""

from __future__ import annotations

import ssl

import nats.errors

from ponix_config import NatsSettings
from ponix_nats import tls_context
from ponix_nats.connection import describe, display_url, is_auth_error


def test_urls_shown_in_errors_never_carry_credentials() -> None:
    settings = NatsSettings(url="nats://alice:secret@h1:4222,nats://h2:4222")
    assert display_url(settings) == "nats://h1:4222,nats://h2:4222"
    assert settings.password is not None
    assert settings.password.get_secret_value() == "secret"


def test_no_tls_files_means_no_context() -> None:
    assert tls_context(NatsSettings()) is None


def test_tls_context_verifies_servers() -> None:
    ctx = tls_context(
        NatsSettings(url="tls://h:4222", tls_ca_file=ssl.get_default_verify_paths().cafile)
    )
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_authorization_violation_is_an_auth_error_and_refusal_is_not() -> None:
    assert is_auth_error(nats.errors.Error("nats: 'Authorization Violation'"))
    assert is_auth_error(nats.errors.AuthorizationError())
    assert not is_auth_error(ConnectionRefusedError(111, "Connect call failed"))
    assert not is_auth_error(nats.errors.Error("nats: 'Maximum Connections Exceeded'"))


def test_descriptions_are_one_lowercase_line_without_the_nats_prefix() -> None:
    assert (
        describe(nats.errors.Error("nats: 'Authorization Violation'")) == "authorization violation"
    )
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(OSError("Connect call failed\n('127.0.0.1', 1)")) == (
        "connect call failed ('127.0.0.1', 1)"
    )
