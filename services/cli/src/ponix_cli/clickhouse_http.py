"""ClickHouse's own output formats (``JSONEachRow``, ``Pretty``...) for ``ponix query``.

The native protocol always returns rows in the Native block format: a ``FORMAT`` clause (or the
``default_format`` setting) is only honoured by the server on its HTTP interface, so that is
where a ClickHouse format name sends the statement. The server writes the bytes; they are copied
to stdout in chunks as they arrive, so memory stays flat here too.

The HTTP URL is ``CLICKHOUSE_HTTP_URL`` (or ``--clickhouse-http-url``); without it, the host of
``CLICKHOUSE_URL`` on port 8123 (8443 for ``clickhouses://``), with the same user and password.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, BinaryIO, Final
from urllib.parse import urlencode, urlsplit

from ponix_cli.errors import CliError

if TYPE_CHECKING:
    from ponix_config import ClickHouseSettings

HTTP_URL: Final = "CLICKHOUSE_HTTP_URL"
HTTP_PORT: Final = 8123
HTTPS_PORT: Final = 8443
_CHUNK: Final = 64 * 1024
# 18.16: "Code: 62, e.displayText() = DB::Exception: ..."; modern: "Code: 62. DB::Exception: ...".
_SERVER_ERROR: Final = re.compile(
    r"Code:\s*(\d+)[.,]\s*(?:e\.displayText\(\) = )?(?:DB::Exception:\s*)?"
    r"(.*?)(?:, e\.what\(\).*)?$",
    re.S,
)
_UNKNOWN_FORMAT: Final = 73


def http_url(settings: ClickHouseSettings, override: str | None = None) -> str:
    """Where the HTTP interface is: the flag, ``CLICKHOUSE_HTTP_URL``, else derived."""
    chosen = (override or os.environ.get(HTTP_URL, "")).strip()
    if chosen:
        parts = urlsplit(chosen)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(
                "config.invalid", f"{HTTP_URL}={chosen!r} is not an http(s)://host:port URL"
            )
        return chosen.rstrip("/")
    scheme, port = ("https", HTTPS_PORT) if settings.secure else ("http", HTTP_PORT)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{scheme}://{host}:{port}"


def copy_formatted(
    settings: ClickHouseSettings,
    base_url: str,
    statement: str,
    output_format: str,
    *,
    database: str,
    out: BinaryIO,
) -> None:
    """Run ``statement`` on the HTTP interface with ``default_format=output_format`` and copy
    the server's bytes to ``out``; blocks. Errors are the ClickHouse lib's."""
    from ponix_clickhouse import ClickHouseAuthError, ClickHouseUnavailableError

    query = {"default_format": output_format}
    if database:
        query["database"] = database
    # http_url() only hands out http(s) URLs, so urllib opens nothing else (no file:).
    request = urllib.request.Request(  # noqa: S310
        f"{base_url}/?{urlencode(query)}", data=statement.encode("utf-8"), method="POST"
    )
    credentials = f"{settings.user}:{settings.password.get_secret_value()}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode("ascii"))
    try:
        with urllib.request.urlopen(  # noqa: S310 - http(s) only, see above
            request, timeout=settings.send_receive_timeout
        ) as reply:
            while chunk := reply.read(_CHUNK):
                out.write(chunk)
                out.flush()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", errors="replace")
        if exc.code in (401, 403):
            raise ClickHouseAuthError(base_url, settings.user, _reason(body)) from None
        raise _query_error(body, output_format) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClickHouseUnavailableError(
            base_url, f"{reason} (ClickHouse's HTTP interface; set {HTTP_URL} if it is elsewhere)"
        ) from None


def _query_error(body: str, output_format: str) -> Exception:
    from ponix_clickhouse import QueryError

    match = _SERVER_ERROR.search(body.strip())
    code = int(match.group(1)) if match else None
    reason = _reason(body)
    if code == _UNKNOWN_FORMAT:
        reason = (
            f"{output_format} is neither one of ponix's formats (table, tsv, csv, jsonl) "
            "nor a ClickHouse output format (names are case-sensitive: JSONEachRow, CSV, Pretty)"
        )
    return QueryError(code, reason)


def _reason(body: str) -> str:
    text = body.strip()
    match = _SERVER_ERROR.search(text)
    reason = match.group(2) if match else text
    lines = reason.strip().splitlines()
    return lines[0].strip() if lines else "no message"
