"""Gello on Redis (docs/backends/gello.md, "Redis layout"): keys, cursor, discovery, reader, writer
and declaration, as every backend package; the job record is shared with Gello on PostgreSQL
(backends/gello/record.py)."""
