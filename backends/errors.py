"""Errors a reader raises. Messages are one line and never contain a password."""


class BackendError(Exception):
    """The backend answered with an error, or its data cannot be read."""


class ConnectError(BackendError):
    """The server cannot be reached, refused the connection, or rejected the credentials."""


class PermissionDenied(BackendError):
    """The server refused a command for lack of permission (a Redis ACL user without write access,
    a PostgreSQL role without privileges). The message names the user and what it may not do."""


class Malformed(BackendError):
    """The stored data is not in the shape its library writes (a key of the wrong type, ...), so
    this one queue or job cannot be read; the message names the raw key (escaped when shown)."""


class BackendTimeout(BackendError):
    """A backend call took longer than its timeout."""


class BadUrl(ValueError):
    """A connection string that is malformed or has an unknown scheme (bad usage, exit 2)."""


class BadRequest(BackendError):
    """The request names what the backend does not have: a state, a page cursor (bad input, exit 2)."""


class BadCursor(BadRequest):
    """A page cursor that this reader did not make."""


class Unsupported(BackendError):
    """The reader cannot do this (its capabilities say so; the UI never offers it)."""
