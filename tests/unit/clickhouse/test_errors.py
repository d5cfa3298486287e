"""Every failure has a stable code and a one-line message; INSERT failures are classified."""

from __future__ import annotations

import struct

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import NetworkError, ServerException, SocketTimeoutError

from ponix_clickhouse import (
    INSERT_FAILURES,
    ClickHouseAuthError,
    ClickHouseError,
    ClickHouseUnavailableError,
    Fault,
    InsertError,
    QueryError,
    insert_error,
)
from ponix_clickhouse.client import translate_error
from ponix_clickhouse.errors import first_line

STACKED = (
    "DB::Exception: Database nope doesn't exist. Stack trace:\n\n"
    "0. /lib/x86_64-linux-gnu/libclickhouse.so.18.16(StackTrace::StackTrace()+0x16)\n"
)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (252, "too_many_parts"),
        (164, "readonly"),
        (242, "readonly"),
        (497, "access_denied"),
        (241, "memory_limit"),
        (210, "network"),
        (209, "timeout"),
        (159, "timeout"),
        (60, "unknown_table"),
        (81, "unknown_database"),
        (16, "schema_drift"),
        (53, "schema_drift"),
        (516, "auth_failed"),
        (279, "replicas"),
    ],
)
def test_what_the_store_does_wrong_is_the_stores_fault(code: int, reason: str) -> None:
    error = insert_error(ServerException("DB::Exception: boom", code=code), retry_after=2.5)
    assert error.fault is Fault.STORE
    assert error.reason == reason
    assert error.server_code == code
    assert error.retry_after == 2.5


@pytest.mark.parametrize("code", [62, 1234, 99999, 0])
def test_a_code_nobody_listed_is_the_stores_fault(code: int) -> None:
    """When in doubt, it is the store."""
    error = insert_error(ServerException("DB::Exception: no", code=code))
    assert error.fault is Fault.STORE
    assert error.reason == f"server_error_{code}"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (6, "cannot_parse_text"),
        (27, "cannot_parse_input"),
        (41, "cannot_parse_datetime"),
        (72, "cannot_parse_number"),
        (117, "incorrect_data"),
        (395, "throw_if"),
        (469, "violated_constraint"),
    ],
)
def test_what_a_row_alone_triggers_is_the_messages_fault(code: int, reason: str) -> None:
    error = insert_error(ServerException("DB::Exception: Cannot parse input", code=code))
    assert error.fault is Fault.MESSAGE
    assert error.reason == reason


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (NetworkError("Connection refused (127.0.0.1:9000)"), "network"),
        (SocketTimeoutError("Code: 209. (127.0.0.1:9000)"), "timeout"),
        (TimeoutError("timed out"), "timeout"),  # also socket.timeout
        (ConnectionResetError(104, "Connection reset by peer"), "network"),
        (EOFError("Unexpected EOF while reading bytes"), "network"),
        (RuntimeError("something nobody expected"), "client_error"),
        # Serialising a row failed: the rows are built to the table's layout, so the table moved.
        (struct.error("required argument is not an integer"), "client_error"),
        (TypeError("bad"), "client_error"),
        (ValueError("Different rows length"), "client_error"),
        (AttributeError("'str' object has no attribute 'tzinfo'"), "client_error"),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), "client_error"),
    ],
)
def test_whatever_the_driver_raises_is_the_stores_fault(exc: BaseException, reason: str) -> None:
    error = insert_error(exc)
    assert error.fault is Fault.STORE
    assert error.reason == reason


def test_the_classification_table_is_data_with_both_faults() -> None:
    faults = {fault for _, fault in INSERT_FAILURES.values()}
    assert faults == {Fault.MESSAGE, Fault.STORE}
    assert {164, 252, 497, 241, 210, 60, 16}.issubset(
        code for code, (_, fault) in INSERT_FAILURES.items() if fault is Fault.STORE
    )
    reasons = [reason for reason, _ in INSERT_FAILURES.values()]
    assert all(reason.isidentifier() and reason.islower() for reason in reasons)


def test_messages_are_one_line_with_a_stable_code() -> None:
    error = insert_error(ServerException(STACKED, code=81))
    assert str(error) == (
        "clickhouse.insert_failed: unknown_database (store): Database nope doesn't exist."
    )
    assert "\n" not in str(error)
    assert isinstance(error, ClickHouseError)
    assert InsertError.code == "clickhouse.insert_failed"


def test_first_line_drops_prefix_and_stack() -> None:
    assert first_line(STACKED) == "Database nope doesn't exist."
    assert first_line("\n\n  DB::Exception: Syntax error: failed at position 1\n") == (
        "Syntax error: failed at position 1"
    )
    assert first_line("") == "no message"
    assert len(first_line("x" * 1000)) == 300


def test_translated_errors_name_the_url_without_secrets() -> None:
    client = Client("db.internal", port=9000, user="writer", password="s3cret", database="ponix")
    down = translate_error(NetworkError("Connection refused (db.internal:9000)"), client)
    assert isinstance(down, ClickHouseUnavailableError)
    assert down.code == "clickhouse.unreachable"
    assert "clickhouse://db.internal:9000/ponix" in str(down)
    auth = translate_error(ServerException("DB::Exception: Wrong password", code=193), client)
    assert isinstance(auth, ClickHouseAuthError)
    assert auth.code == "clickhouse.auth_failed"
    syntax = translate_error(ServerException("DB::Exception: Syntax error: x", code=62), client)
    assert isinstance(syntax, QueryError)
    assert str(syntax) == "clickhouse.query_failed: Code 62: Syntax error: x"
    for error in (down, auth, syntax):
        assert "s3cret" not in str(error)
