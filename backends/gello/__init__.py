"""Gello queues (docs/backends/gello.md): a Redis reader and a PostgreSQL reader, both with
retry/purge of dead jobs. Gello has no pause; both readers say so in their capabilities."""
