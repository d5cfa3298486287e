"""Server URLs whose credentials are lifted into ``SecretStr`` fields so no URL leaks them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class SplitUrl:
    """A URL without its userinfo, and the userinfo it carried (percent-decoded)."""

    url: str
    user: str | None
    password: str | None


def split_credentials(url: str) -> SplitUrl:
    """Return ``url`` with ``user:password@`` removed, plus the removed parts."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return SplitUrl(url=url, user=None, password=None)
    # Keep host:port as written (no port parsing here): a bad port is reported by the URL's
    # own validator, on the URL without its credentials.
    netloc = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SplitUrl(url=clean, user=user, password=password)
