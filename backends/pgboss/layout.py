"""pg-boss storage layouts by schema version (docs/backends/pgboss.md, "Layouts by schema version").

Only identifiers that come from the database catalog are pasted into SQL, and always through
``quote_ident``. Queue names, job ids and every other value travel as bind parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from backends.postgres import quote_ident  # also imported from here by the pg-boss modules

#: schema versions this reader knows: 20 (v9), 21-24 (v10), 25-26 (v11 / 12.0-12.5), 27-46 (v12)
KNOWN_MAX_VERSION = 46

#: pg-boss's own state names (job_state enum). v9 also has ``expired``.
NATIVE_STATES = ("created", "retry", "active", "completed", "cancelled", "failed")
NATIVE_STATES_V9 = ("created", "retry", "active", "completed", "expired", "cancelled", "failed")




@dataclass
class Layout:
    """How one pg-boss schema stores its jobs at one schema version."""

    schema: str
    version: int
    job_columns: frozenset[str] = field(default_factory=frozenset)
    queue_columns: frozenset[str] = field(default_factory=frozenset)
    #: names of valid indexes on the job table or its partitions (job_common_i14, job_i14, ...)
    valid_indexes: frozenset[str] = field(default_factory=frozenset)
    has_archive: bool = False

    # --------------------------------------------------------------------- classification
    @property
    def major(self) -> str:
        v = self.version
        if v == 20:
            return "v9"
        if 21 <= v <= 24:
            return "v10"
        if 25 <= v <= 26:
            return "v11"
        if 27 <= v <= KNOWN_MAX_VERSION:
            return "v12"
        return "unknown"

    @property
    def known(self) -> bool:
        return self.major != "unknown"

    @property
    def read_only_reason(self) -> str | None:
        if self.major == "v9":
            return "pg-boss v9 schema (version 20): read-only"
        if not self.known:
            return (f"pg-boss schema version {self.version} is newer than this console knows "
                    f"(<= {KNOWN_MAX_VERSION}); shown read-only, counts not read")
        return None

    @property
    def q(self) -> str:
        return quote_ident(self.schema)

    @property
    def job(self) -> str:
        return f"{self.q}.job"

    @property
    def archive(self) -> str:
        return f"{self.q}.archive"

    @property
    def native_states(self) -> tuple[str, ...]:
        return NATIVE_STATES_V9 if self.major == "v9" else NATIVE_STATES

    @property
    def has_queue_table(self) -> bool:
        return self.major in ("v10", "v11", "v12") and "name" in self.queue_columns

    @property
    def has_blocked(self) -> bool:
        return "blocked" in self.job_columns

    @property
    def has_counters(self) -> bool:
        return {"queued_count", "active_count", "total_count"} <= self.queue_columns

    @property
    def i14(self) -> bool:
        """12.38's (name, state, blocked, start_after) index for created/retry/active/failed."""
        return self.major == "v12" and "blocked" in self.job_columns and any(
            name.endswith("_i14") for name in self.valid_indexes)

    # --------------------------------------------------------------------- column names
    def col(self, name: str) -> str:
        """The job column for a v10+ snake_case name (v9 stores camelCase unquoted, i.e. lower-case)."""
        if self.major == "v9":
            return {
                "retry_limit": "retrylimit", "retry_count": "retrycount", "retry_delay": "retrydelay",
                "retry_backoff": "retrybackoff", "start_after": "startafter", "started_on": "startedon",
                "singleton_key": "singletonkey", "singleton_on": "singletonon", "expire_in": "expirein",
                "created_on": "createdon", "completed_on": "completedon", "keep_until": "keepuntil",
            }.get(name, name)
        return name

    @property
    def ready_op(self) -> str:
        """The fetch's time test: v9-v11 ``start_after < now()``, v12 ``start_after <= now()``."""
        return "<=" if self.major == "v12" else "<"

    def internal(self, name: str) -> bool:
        return name.startswith("__pgboss__") or (self.major == "v9" and name.startswith("__state__completed__"))
