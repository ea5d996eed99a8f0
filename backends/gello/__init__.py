"""Gello's job record (record.py), shared by its two backends: backends/gello_redis and
backends/gello_postgres (docs/backends/gello.md). Gello has no pause; both say so in their
capabilities."""
