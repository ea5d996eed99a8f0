"""Connection strings: parsing, validation and redaction (a password is never shown)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from backends.errors import BadUrl

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+unix")
POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class ConnectionUrl:
    raw: str
    scheme: str
    kind: str  # "redis" or "postgres"

    @property
    def redacted(self) -> str:
        return redact(self.raw)

    @property
    def host_label(self) -> str:
        """Where it points, for error messages: host:port or the socket path."""
        parts = urlsplit(self.raw)
        if parts.scheme in ("unix", "redis+unix") or not parts.hostname:
            return parts.path or "local socket"
        port = _port(parts)
        return f"{parts.hostname}:{port}" if port else parts.hostname


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError as exc:
        raise BadUrl(f"bad port in {redact(parts.geturl())}") from exc


def parse(raw: str) -> ConnectionUrl:
    """Validate a connection string; BadUrl names what is wrong (without the password)."""
    if not raw or "://" not in raw:
        raise BadUrl(f"not a connection URL: {redact(raw)!r} (expected redis://, rediss://, unix://, postgresql://)")
    try:
        parts = urlsplit(raw)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise BadUrl(f"malformed URL {redact(raw)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in REDIS_SCHEMES:
        kind = "redis"
        if scheme in ("unix", "redis+unix"):
            if not parts.path:
                raise BadUrl(f"unix socket URL without a path: {redact(raw)}")
        elif not parts.hostname:
            raise BadUrl(f"no host in {redact(raw)}")
        db = parts.path.lstrip("/")
        if scheme in ("redis", "rediss") and db and not db.isdigit():
            raise BadUrl(f"Redis database must be a number, got {db!r} in {redact(raw)}")
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "db" and not value.isdigit():
                raise BadUrl(f"Redis database must be a number, got {value!r} in {redact(raw)}")
    elif scheme in POSTGRES_SCHEMES:
        kind = "postgres"
    else:
        raise BadUrl(f"unknown URL scheme {parts.scheme!r} in {redact(raw)} (expected redis://, rediss://, unix://, postgresql://)")
    _port(parts)
    return ConnectionUrl(raw=raw, scheme=scheme, kind=kind)


def redact(raw: str) -> str:
    """The URL with any password replaced by ``***`` (also in the query string)."""
    try:
        parts = urlsplit(raw)
    except ValueError:
        return "<unparseable URL>"
    scheme, sep, rest = raw.partition("://")
    if sep and "@" in rest and "@" not in parts.netloc:
        # a raw '/', '?' or '#' in a password ends the authority early for urlsplit, leaving the
        # password in the path, query or fragment: hide everything up to the last '@'
        return redact(f"{scheme}://***@{rest.rpartition('@')[2]}")
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, colon, _pw = userinfo.partition(":")
        netloc = f"{user}:***@{hostinfo}" if colon else f"{user}@{hostinfo}"
    query = "&".join(
        f"{k}=***" if k.lower() in ("password", "pass", "pwd") else (f"{k}={v}" if sep_ else k)
        for k, sep_, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    if not sep:
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    # built by hand: urlunsplit drops the "//" of an empty authority (unix:///path -> unix:/path)
    out = f"{scheme}://{netloc}{parts.path}"
    if query:
        out += "?" + query
    if parts.fragment:
        out += "#" + parts.fragment
    return out
