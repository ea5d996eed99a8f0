"""BullMQ 6 queues stored in PostgreSQL (BullMQ's ``createPostgresBackend``; docs/backends/bullmq-postgres.md)."""
