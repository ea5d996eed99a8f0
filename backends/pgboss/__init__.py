"""pg-boss (PostgreSQL) reader: schema discovery, layouts per schema version, counts, pages, details."""
