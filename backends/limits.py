"""Batch sizes: the one place every backend and the action layer take them from.

A mutation call is one bounded batch; the action layer (console.actions) loops over batches and
reports progress and failures between them.
"""
from __future__ import annotations

#: job ids per explicit-id mutation call (retry_jobs, remove_jobs, promote_jobs, cancel_jobs): one
#: pipelined round trip of per-job scripts in Redis, one statement in PostgreSQL (row locks that
#: fetchers SKIP LOCKED past stay few and short). Also pg-boss's park/unpark step.
MAX_IDS = 500
#: jobs per bulk batch (retry_batch, purge_batch): one script call / one statement and one commit.
#: BullMQ's own retryJobs/clean default; pg-boss's own chunk. Measured on a 2.4M-row pg-boss 12.38
#: table (docs/performance.md), batches of 500 spent a commit (~4 ms fsync) per 500 rows where
#: pg-boss spends one per 1,000.
MAX_BULK = 1000


def bulk_count(count: int) -> int:
    """A bulk batch call's ``count``, clamped to 1..MAX_BULK."""
    return max(1, min(int(count), MAX_BULK))
