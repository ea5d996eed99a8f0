"""Connection strings: parsing, validation and redaction (a password is never shown).

Credentials come off first, before anything parses the rest, so that no parse error can echo
them: the userinfo is everything between the first ``://`` and the LAST ``@`` (a password may
hold raw ``/ ? # @ : %``, the way a human typed it). Only the credential-free rest is parsed and
quoted in messages; the client libraries get a normalised URL whose userinfo is percent-encoded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from backends.errors import BadUrl
from backends.redis_topology import SENTINEL_SCHEMES, parse_sentinel

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+unix", "redis+sentinel", "rediss+sentinel")
POSTGRES_SCHEMES = ("postgresql", "postgres")
EXPECTED = "expected redis://, rediss://, unix://, redis+sentinel://, postgresql://"

#: a password given in the query string; its value is hidden up to the end of the URL (a raw '&'
#: or '#' in it would otherwise leave its tail showing)
_QUERY_SECRET = re.compile(r"(?i)(?:^|[?&;])(?:password|pass|pwd|passwd|sslpassword|sentinel_password)=")
#: a scheme as it may be shown in a message (anything else is not repeated)
_SHOWABLE_SCHEME = re.compile(r"[A-Za-z0-9+.\- ]{1,24}")
#: a user name as it may be shown (anything else could be a misplaced password)
_SHOWABLE_USER = re.compile(r"[A-Za-z0-9._~+\-%]{1,64}")


@dataclass(frozen=True)
class Credentials:
    """``raw`` split once: scheme text, userinfo (None when there is no ``@``), the rest."""

    scheme: str  # as typed, before "://" ("" when there is none)
    has_sep: bool
    userinfo: str | None
    rest: str  # host, port, path, query, fragment: no credentials in the userinfo sense

    @property
    def user(self) -> str:
        return unquote((self.userinfo or "").partition(":")[0])

    @property
    def password(self) -> str | None:
        if self.userinfo is None or ":" not in self.userinfo:
            return None
        return unquote(self.userinfo.partition(":")[2])


def split_credentials(raw: str) -> Credentials:
    scheme, sep, after = raw.partition("://")
    if not sep:
        scheme, after = "", raw
    if "@" in after:
        userinfo, _, rest = after.rpartition("@")
        return Credentials(scheme, bool(sep), userinfo, rest)
    return Credentials(scheme, bool(sep), None, after)


def _hide_query_secret(rest: str) -> str:
    m = _QUERY_SECRET.search(rest)
    return rest if m is None else rest[: m.end()] + "***"


def _hide_bad_port(rest: str) -> str:
    """Without an ``@``, ``host:secret`` may be a password typed where a port goes: a port that
    is not a number is not repeated, nor anything after it (each host of a ``h1:p1,h2:p2`` list
    is checked; from the first colon after a host, so ``:00:`` and ``host:1:x`` hide it too)."""
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    shown: list[str] = []
    for one in authority.split(","):
        host_end = one.find("]") + 1 if one.startswith("[") else 0
        host, colon, port = one[host_end:].partition(":")
        if colon and not port.isdigit():
            # the path could be the rest of it: not shown either
            return ",".join([*shown, one[:host_end] + host + ":***"])
        shown.append(one)
    return rest


def _shown_scheme(scheme: str) -> str:
    return scheme if _SHOWABLE_SCHEME.fullmatch(scheme) else "<not a scheme>"


def redact(raw: str) -> str:
    """The URL with any password replaced by ``***`` (userinfo, query string, a misplaced port).

    Never raises; never returns text that was part of the userinfo except a plain user name."""
    c = split_credentials(raw)
    if c.userinfo is not None and _QUERY_SECRET.search(c.userinfo):
        # "?password=a@b" or a userinfo holding "?password=": either way nothing after "://" is shown
        return f"{_shown_scheme(c.scheme)}://***" if c.has_sep else "***"
    rest = _hide_query_secret(c.rest)
    if c.userinfo is None:
        rest = _hide_bad_port(rest)
        shown = rest
    else:
        user, colon, _ = c.userinfo.partition(":")
        if user and (not c.has_sep or not _SHOWABLE_USER.fullmatch(user)):
            user = "***"
        shown = (f"{user}:***@" if colon else (f"{user}@" if user != "***" else "***@")) + rest
    if not c.has_sep:
        return shown
    return f"{_shown_scheme(c.scheme)}://{shown}"


@dataclass(frozen=True)
class ConnectionUrl:
    raw: str = field(repr=False)  # holds the password: never in a repr (tracebacks show locals)
    scheme: str = ""
    kind: str = ""  # "redis" or "postgres"
    #: the URL without credentials (what is parsed, and what messages may quote)
    bare: str = field(default="", repr=False)
    username: str = field(default="", repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        return redact(self.raw)

    def __repr__(self) -> str:
        return f"ConnectionUrl({self.redacted!r})"

    @property
    def connect_url(self) -> str:
        """For the client library: the same URL with its userinfo percent-encoded (a raw '/', '?',
        '#' or '@' in a password would otherwise end the authority early)."""
        c = split_credentials(self.raw)
        if c.userinfo is None:
            return f"{self.scheme}://{c.rest}"
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        return f"{self.scheme}://{userinfo}@{c.rest}"

    @property
    def secrets(self) -> list[str]:
        """Every form of the password that a library's message might repeat (for scrubbing)."""
        c = split_credentials(self.raw)
        forms = {self.password, (c.userinfo or "").partition(":")[2], quote(self.password or "", safe="")}
        # shorter ones are not replaced: they would turn every "p" of a message into "***"
        return sorted((f for f in forms if f and len(f) >= 3), key=len, reverse=True)

    @property
    def host_label(self) -> str:
        """Where it points, for error messages: host:port or the socket path."""
        if self.scheme in SENTINEL_SCHEMES:
            return parse_sentinel(self.bare, self.redacted).label
        parts = urlsplit(self.bare)
        if parts.scheme in ("unix", "redis+unix") or not parts.hostname:
            return parts.path or "local socket"
        port = _port(parts, self.raw)
        return f"{parts.hostname}:{port}" if port else parts.hostname


def _port(parts: SplitResult, raw: str) -> int | None:
    try:
        return parts.port
    except ValueError as exc:
        raise BadUrl(f"bad port in {redact(raw)}") from exc


def parse(raw: str) -> ConnectionUrl:
    """Validate a connection string; BadUrl names what is wrong (without the password)."""
    c = split_credentials(raw)
    if not raw or not c.has_sep:
        raise BadUrl(f"not a connection URL: {redact(raw)!r} ({EXPECTED})")
    if c.userinfo is not None and _QUERY_SECRET.search(c.userinfo):
        raise BadUrl(f"ambiguous URL {redact(raw)}: a password in the query string holds an '@' "
                     "(write it as %40), or the user:password part holds '?password=' (write '?' as %3F)")
    scheme = c.scheme.lower()
    if scheme not in REDIS_SCHEMES + POSTGRES_SCHEMES:
        raise BadUrl(f"unknown URL scheme {_shown_scheme(c.scheme)!r} in {redact(raw)} ({EXPECTED})")
    bare = f"{scheme}://{c.rest}"
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel(bare, redact(raw))  # hosts, master name, db
        return ConnectionUrl(raw=raw, scheme=scheme, kind="redis", bare=bare, username=c.user, password=c.password)
    try:
        parts = urlsplit(bare)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise BadUrl(f"malformed URL {redact(raw)!r}: {exc}") from None
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
                raise BadUrl(f"Redis database must be a number (db= in the query) in {redact(raw)}")
    else:
        kind = "postgres"
    _port(parts, raw)
    return ConnectionUrl(raw=raw, scheme=scheme, kind=kind, bare=bare, username=c.user, password=c.password)
