"""Gello on PostgreSQL (docs/backends/gello.md, "PostgreSQL layout"): layout, cursor, discovery,
reader, writer and declaration, as every backend package."""
